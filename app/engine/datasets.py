"""Toy data sets for demos and tests, and a description of label arrays.

``generate`` returns x float32 (n, 2) and y int64 (n,), rows shuffled, reproducible from
``seed``; ``noise`` is the standard deviation of Gaussian noise added to each coordinate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from app.engine.errors import ConfigError

MAX_SAMPLES = 1_000_000
MAX_CLASSES = 100
MAX_NOISE = 10.0
Points = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


def _split(n: int, classes: int) -> list[int]:
    """Samples per class: as even as possible, the first classes get the remainder."""
    return [n // classes + (1 if c < n % classes else 0) for c in range(classes)]


def xor(n: int, classes: int, rng: np.random.Generator) -> Points:
    """The corners (0,0) (0,1) (1,0) (1,1) with labels 0 1 1 0, cycled to n points."""
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    index = np.arange(n) % 4
    return corners[index], np.array([0, 1, 1, 0], dtype=np.int64)[index]


def moons(n: int, classes: int, rng: np.random.Generator) -> Points:
    """Two interleaving half circles."""
    n_top, n_bottom = _split(n, 2)
    top = np.linspace(0.0, np.pi, n_top)
    bottom = np.linspace(0.0, np.pi, n_bottom)
    x = np.concatenate(
        [
            np.stack([np.cos(top), np.sin(top)], axis=1),
            np.stack([1.0 - np.cos(bottom), 0.5 - np.sin(bottom)], axis=1),
        ]
    )
    return x, np.repeat(np.array([0, 1], dtype=np.int64), [n_top, n_bottom])


def circles(n: int, classes: int, rng: np.random.Generator) -> Points:
    """A circle of radius 1 (class 0) around one of radius 0.5 (class 1)."""
    n_outer, n_inner = _split(n, 2)
    outer = np.linspace(0.0, 2 * np.pi, n_outer, endpoint=False)
    inner = np.linspace(0.0, 2 * np.pi, n_inner, endpoint=False)
    x = np.concatenate(
        [
            np.stack([np.cos(outer), np.sin(outer)], axis=1),
            0.5 * np.stack([np.cos(inner), np.sin(inner)], axis=1),
        ]
    )
    return x, np.repeat(np.array([0, 1], dtype=np.int64), [n_outer, n_inner])


def spirals(n: int, classes: int, rng: np.random.Generator) -> Points:
    """``classes`` arms winding out from the centre, each through 4 radians."""
    parts, labels = [], []
    for c, count in enumerate(_split(n, classes)):
        radius = np.linspace(0.05, 1.0, count)
        theta = np.linspace(c * 2 * np.pi / classes, c * 2 * np.pi / classes + 4.0, count)
        parts.append(np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1))
        labels.append(np.full(count, c, dtype=np.int64))
    return np.concatenate(parts), np.concatenate(labels)


def blobs(n: int, classes: int, rng: np.random.Generator) -> Points:
    """``classes`` centres evenly spaced on a circle of radius 3, each repeated."""
    angles = 2 * np.pi * np.arange(classes) / classes
    centres = 3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    counts = _split(n, classes)
    labels = np.repeat(np.arange(classes, dtype=np.int64), counts)
    return centres[labels], labels


GENERATORS: dict[str, Callable[[int, int, np.random.Generator], Points]] = {
    "xor": xor,
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "blobs": blobs,
}
MULTICLASS = frozenset({"spirals", "blobs"})


def generate(
    kind: str, n_samples: int = 200, noise: float = 0.1, classes: int = 2, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """A toy data set: x float32 (n_samples, 2), y int64 (n_samples,).

    xor with n_samples <= 4 gives the exact corners (no noise), in order; every other
    set is shuffled. ``classes`` only applies to spirals and blobs (2..100).
    ConfigError for an unknown kind or bad sizes.
    """
    if kind not in GENERATORS:
        raise ConfigError(
            f"unknown data set {kind!r}; valid kinds: {', '.join(GENERATORS)}", ("kind",)
        )
    for name, value, low, high in (
        ("n_samples", n_samples, 1, MAX_SAMPLES),
        ("classes", classes, 2, MAX_CLASSES),
        ("seed", seed, 0, 2**63 - 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(
                f"{name} must be an integer from {low} to {high}, got {value!r}", (name,)
            )
    if kind not in MULTICLASS and classes != 2:
        raise ConfigError(
            f"{kind} always has 2 classes; classes applies to spirals and blobs", ("classes",)
        )
    if n_samples < classes:
        raise ConfigError(f"n_samples must be at least classes ({classes})", ("n_samples",))
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise <= MAX_NOISE:
        raise ConfigError(
            f"noise must be a number from 0 to {MAX_NOISE:g}, got {noise!r}", ("noise",)
        )
    rng = np.random.default_rng(seed)
    x, y = GENERATORS[kind](n_samples, classes, rng)
    if kind == "xor" and n_samples <= 4:
        return x.astype(np.float32), y
    x = x + rng.normal(0.0, noise, size=x.shape) if noise > 0 else x
    order = rng.permutation(n_samples)
    return np.ascontiguousarray(x[order], dtype=np.float32), y[order]
