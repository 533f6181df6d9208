# syntax=docker/dockerfile:1
# Backprop in one image: `backprop serve` (API + workers) by default; docker-compose.yml
# runs the same image as `backprop serve --workers 0` plus separate `backprop worker`s.
#
#   docker build -t backprop .
#   docker run --rm -p 8000:8000 -v backprop-data:/var/lib/backprop \
#       -e BACKPROP_BOOTSTRAP_KEY=bp_... backprop
#
# The volume keeps the SQLite database (in /var/lib/backprop) when the container goes.
# Needs BuildKit (the RUN --mount lines below): the default builder of Docker Engine 23+
# and of `docker compose` v2; with an older engine, DOCKER_BUILDKIT=1 docker build ...
#
# Two stages: the builder makes wheels (a compiler is there in case a dependency has no
# wheel for this platform); the final image installs those wheels and has no compiler.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, read from pyproject.toml alone: editing the source reuses this layer.
COPY pyproject.toml ./
RUN mkdir -p /wheels/deps /wheels/app \
    && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres'] + p['optional-dependencies']['s3']))" \
        > /wheels/deps/requirements.txt \
    && pip wheel --wheel-dir /wheels/deps -r /wheels/deps/requirements.txt
COPY README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-deps --wheel-dir /wheels/app .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/backprop backprop \
    && mkdir -p /var/lib/backprop/data/blob-cache \
    && chown -R backprop:backprop /var/lib/backprop/data
# The wheels are bind-mounted, not copied, so they take no room in the image.
RUN --mount=type=bind,from=builder,source=/wheels/deps,target=/wheels/deps \
    pip install --no-index --find-links /wheels/deps -r /wheels/deps/requirements.txt
RUN --mount=type=bind,from=builder,source=/wheels/app,target=/wheels/app \
    pip install --no-index --no-deps /wheels/app/*.whl \
    && pip check
USER backprop
# The data directory: the default SQLite database and blob store (or, with an s3 blob
# store, the local blob cache; docker-compose.yml mounts a volume there).
ENV BACKPROP_DATA_DIR=/var/lib/backprop/data
WORKDIR /var/lib/backprop
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BACKPROP_PORT', '8000'), timeout=4)"]
CMD ["backprop", "serve", "--host", "0.0.0.0"]
