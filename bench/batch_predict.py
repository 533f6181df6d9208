"""Batch predictions through ``backprop serve`` (API + 1 worker, real processes) against a
bare NumPy forward pass of the same model over the same rows, in the same run.

Uploads a dataset (default 2,000,000 x 100 float32; ``--rows 1000000 --features 784`` for
the MNIST width), imports a model of it (``--hidden 256,128``, 10 softmax outputs, fresh
weights), then runs ``POST /v1/models/{id}/predictions`` twice: a cold run (the worker's
first read of the dataset checks the blob's SHA-256 and pages it in) and a warm one. Each
run's rows/s is taken from its own ``started_at``/``finished_at`` (claim to commit: every
chunk, the output blob and its hash included) and, separately, from the worker's working
time (``rows_per_second``). The peer: ``x @ W.T + b``, ReLU and softmax in NumPy over the
same in-memory rows, in chunks of the same size, with the same BLAS threads, timed before,
between and after the runs; the fastest of the three is the reference (on a busy machine
the peer's rate swings too, and the best one makes the ratio conservative). Target: warm
run >= 0.8x the peer.

    .venv/bin/python bench/batch_predict.py [--rows N] [--features D] [--threads T] [--quick]

The BLAS overrides of these machines are removed for this command only (see _service.py).
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: E402

CHUNK_ROWS = 65_536  # BACKPROP_PREDICTION_CHUNK_ROWS's default; the peer uses it too


def make_weights(sizes: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised float32 W1..WL (n[l], n[l-1]) and small biases b1..bL (n[l],)."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        scale = np.sqrt(2.0 / n_in)
        arrays[f"W{layer}"] = (rng.standard_normal((n_out, n_in)) * scale).astype(np.float32)
        arrays[f"b{layer}"] = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
    return arrays


def bare_forward(x: np.ndarray, weights: dict[str, np.ndarray], layers: int) -> np.ndarray:
    """Outputs (n, k) of the ReLU MLP with a softmax output, CHUNK_ROWS rows at a time."""
    k = weights[f"W{layers}"].shape[0]
    out = np.empty((x.shape[0], k), dtype=np.float32)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        a = x[start : start + CHUNK_ROWS]
        for layer in range(1, layers):
            a = a @ weights[f"W{layer}"].T
            a += weights[f"b{layer}"]
            np.maximum(a, 0, out=a)
        z = a @ weights[f"W{layers}"].T
        z += weights[f"b{layers}"]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        out[start : start + z.shape[0]] = z
    return out


def timed_bare(
    x: np.ndarray, weights: dict[str, np.ndarray], layers: int
) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = bare_forward(x, weights, layers)
    return x.shape[0] / (time.perf_counter() - start), out


def prediction_run(client: Any, model_id: str, dataset_id: str) -> dict[str, Any]:
    run = _service.check(
        client.post(f"/v1/models/{model_id}/predictions", json={"dataset_id": dataset_id}), 202
    )
    while run["status"] in ("queued", "running"):
        time.sleep(0.2)
        run = _service.check(client.get(f"/v1/predictions/{run['id']}"), 200)
    if run["status"] != "succeeded":
        raise RuntimeError(f"prediction run {run['id']} ended {run['status']}: {run['error']}")
    seconds = _service.parse_time(run["finished_at"]) - _service.parse_time(run["started_at"])
    run["end_to_end_rows_per_second"] = run["rows_total"] / seconds
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads, both sides")
    parser.add_argument("--quick", action="store_true", help="200,000 rows")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = 200_000 if args.quick else args.rows
    sizes = [args.features, *(int(n) for n in args.hidden.split(",")), 10]
    layers = len(sizes) - 1
    weights = make_weights(sizes)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, args.features), dtype=np.float32)
    y = rng.integers(0, 10, rows)

    with threadpool_limits(args.threads, user_api="blas"):
        conditions = _service.Conditions.collect()
        print(conditions.describe())
        before, reference = timed_bare(x, weights, layers)
        env = {"BACKPROP_BLAS_THREADS": str(args.threads)}
        with _service.running_service(workers=1, extra_env=env, ready_timeout=180) as service:
            client = service.client(timeout=600)
            with tempfile.TemporaryDirectory(prefix="backprop-bench-") as folder:
                path = Path(folder) / "data.npz"
                np.savez(path, x=x, y=y)
                upload_start = time.perf_counter()
                with path.open("rb") as handle:
                    files = {"file": ("data.npz", handle, "application/octet-stream")}
                    dataset = _service.check(
                        client.post("/v1/datasets/upload", files=files, data={"name": "rows"}),
                        201,
                    )
                upload_seconds = time.perf_counter() - upload_start
            network = _service.create_network(
                client, name="batch", sizes=sizes, hidden="relu", output="softmax"
            )
            npz = io.BytesIO()
            np.savez(npz, **weights)  # type: ignore[arg-type]
            model = _service.check(
                client.post(
                    "/v1/models/import",
                    data={"network_id": network["id"]},
                    files={"file": ("w.npz", npz.getvalue(), "application/octet-stream")},
                ),
                201,
            )
            cold = prediction_run(client, model["id"], dataset["id"])
            between, _ = timed_bare(x, weights, layers)
            warm = prediction_run(client, model["id"], dataset["id"])
            download = client.get(f"/v1/predictions/{warm['id']}/download?format=npy")
            outputs = np.load(io.BytesIO(download.content), allow_pickle=False)
        after, _ = timed_bare(x, weights, layers)

    bare = max(before, between, after)  # the peer at its best: the ratios are conservative
    agree = float(np.abs(outputs - reference).max())
    print(f"\n{rows:,} x {args.features} float32, {'-'.join(map(str, sizes))} relu/softmax, "
          f"{args.threads} BLAS thread(s), chunks of {CHUNK_ROWS:,} rows; upload "
          f"{upload_seconds:.1f} s; load average now {_service.load_average()}")  # fmt: skip
    table = [
        [
            "bare NumPy forward (before / between / after; the best is 1.00)",
            f"{before:,.0f} / {between:,.0f} / {after:,.0f}",
            "1.00",
        ],
    ]
    for name, run in (("cold", cold), ("warm", warm)):
        end_to_end = run["end_to_end_rows_per_second"]
        table.append([f"prediction run, {name}: started -> finished", f"{end_to_end:,.0f}",
                      f"{end_to_end / bare:.2f}"])  # fmt: skip
        table.append([f"prediction run, {name}: worker's rows/s", f"{run['rows_per_second']:,.0f}",
                      f"{run['rows_per_second'] / bare:.2f}"])  # fmt: skip
    _service.print_table(["what", "rows/s", "x bare"], table)
    print(f"max |run - bare| over all outputs: {agree:.2e}")
    if args.json:
        report = {
            "rows": rows,
            "sizes": sizes,
            "threads": args.threads,
            "bare": [before, between, after],
            "cold": cold,
            "warm": warm,
            "load": _service.load_average(),
        }
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
