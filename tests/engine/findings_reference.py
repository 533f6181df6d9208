"""The findings rules as they were before they were made incremental: each a function
of the WHOLE history, re-read every time. Kept as the oracle that
tests/engine/test_findings_incremental.py compares :class:`app.engine.findings.Findings`
with, epoch by epoch. Thresholds come from :mod:`app.engine.findings` (one source)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from app.engine.findings import (
    DEAD_FRACTION,
    EXPLODED_FACTOR,
    EXPLODING_RATIO,
    FLAT_EPOCHS,
    FLAT_LOSS,
    LOW_UPDATE_RATIO,
    OSCILLATION_FLIPS,
    OSCILLATION_SIZE,
    OSCILLATION_WINDOW,
    OVERFIT_EPOCHS,
    OVERFIT_RISE,
    SATURATED_FRACTION,
    VANISHING_RATIO,
)

Entry = Mapping[str, Any]
Finding = dict[str, Any]


def evaluate(history: Sequence[Entry], *, diverged: bool = False) -> list[Finding]:
    """The findings of a run with this history; ``diverged``: it ended in non-finite
    values (the epoch after the last entry)."""
    found: list[Finding] = []
    for rule in RULES:
        found.extend(rule(history))
    if diverged and not any(f["kind"] == "learning_rate_high" for f in found):
        found.append(
            _finding(
                len(history) + 1,
                None,
                "learning_rate_high",
                "The loss became infinite or NaN: the steps overshoot. Divide the "
                "learning rate by 10, or set clip_norm to cap each step.",
            )
        )
    return sorted(found, key=lambda f: (f["epoch"], f["layer"] or 0, f["kind"]))


def _finding(epoch: int, layer: int | None, kind: str, message: str) -> Finding:
    return {"epoch": int(epoch), "layer": layer, "kind": kind, "message": message}


def _number(entry: Entry, key: str) -> float | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _layers(entry: Entry) -> list[Mapping[str, Any]]:
    layers = entry.get("layers")
    return (
        [layer for layer in layers if isinstance(layer, Mapping)]
        if isinstance(layers, list)
        else []
    )


def overfitting(history: Sequence[Entry]) -> list[Finding]:
    """Validation loss rising for OVERFIT_EPOCHS epochs since its best while the training
    loss fell; names the epoch early stopping would have kept."""
    points = [
        (int(e["epoch"]), loss, val)
        for e in history
        if (loss := _number(e, "loss")) is not None and (val := _number(e, "val_loss")) is not None
    ]
    if len(points) <= OVERFIT_EPOCHS:
        return []
    best = min(range(len(points)), key=lambda i: points[i][2])
    epoch, loss, val = points[-1]
    best_epoch, best_loss, best_val = points[best]
    since = len(points) - 1 - best
    # The validation loss as a mean over OVERFIT_EPOCHS epochs: the noise of a few
    # validation rows must not read as a trend.
    width = OVERFIT_EPOCHS
    smooth = [
        sum(v for _, _, v in points[i - width : i]) / width for i in range(width, len(points) + 1)
    ]
    lowest = min(range(len(smooth)), key=smooth.__getitem__)
    if (
        since < OVERFIT_EPOCHS
        or len(smooth) - 1 - lowest < OVERFIT_EPOCHS  # rising for several epochs...
        or smooth[-1] < smooth[lowest] * (1 + OVERFIT_RISE)  # ... by more than noise
        or loss >= best_loss  # while the training loss kept falling
    ):
        return []
    return [
        _finding(
            epoch,
            None,
            "overfitting",
            f"Validation loss has risen for {since} epochs since epoch {best_epoch} "
            f"({best_val:.4g} → {val:.4g}) while training loss kept falling "
            f"({best_loss:.4g} → {loss:.4g}): the network is memorising the training rows. "
            f"Early stopping would have kept epoch {best_epoch}'s model: set early_stopping "
            f"(patience {OVERFIT_EPOCHS}), or add data, l2, or use a smaller network.",
        )
    ]


def dead_units(history: Sequence[Entry]) -> list[Finding]:
    """relu / leaky_relu layers with more than DEAD_FRACTION of units never active."""
    latest: dict[int, Finding] = {}
    for entry in history:
        for number, layer in enumerate(_layers(entry), start=1):
            share = _number(layer, "dead_fraction")
            if share is not None and share > DEAD_FRACTION:
                latest[number] = _finding(
                    int(entry["epoch"]),
                    number,
                    "dead_units",
                    f"{share:.0%} of layer {number}'s units were dead in epoch {entry['epoch']}: "
                    "z ≤ 0 for every sample, so they output 0 and learn nothing. Lower the "
                    "learning rate, use leaky_relu, or check the initial weights and biases "
                    "(a large negative bias switches a unit off).",
                )
    return list(latest.values())


def saturation(history: Sequence[Entry]) -> list[Finding]:
    """Hidden sigmoid / tanh layers with more than SATURATED_FRACTION of values saturated."""
    latest: dict[int, Finding] = {}
    for entry in history:
        layers = _layers(entry)
        for number, layer in enumerate(layers[:-1], start=1):
            share = _number(layer, "saturated_fraction")
            if share is not None and share > SATURATED_FRACTION:
                latest[number] = _finding(
                    int(entry["epoch"]),
                    number,
                    "saturation",
                    f"{share:.0%} of layer {number}'s activations were within 1% of their bounds "
                    f"in epoch {entry['epoch']}, where the slope g'(z) is nearly 0 and the "
                    "gradient cannot pass. Standardise the inputs, start from smaller weights "
                    "(xavier init), lower the learning rate, or use relu.",
                )
    return list(latest.values())


def gradient_flow(history: Sequence[Entry]) -> list[Finding]:
    """First / last layer gradient-norm ratio below VANISHING_RATIO or above EXPLODING_RATIO."""
    found: dict[str, Finding] = {}
    for entry in history:
        layers = _layers(entry)
        if len(layers) < 2:
            continue
        first, last = _number(layers[0], "grad_norm"), _number(layers[-1], "grad_norm")
        if first is None or last is None or last <= 0:
            continue
        ratio, epoch = first / last, int(entry["epoch"])
        if ratio < VANISHING_RATIO:
            found["vanishing_gradients"] = _finding(
                epoch,
                1,
                "vanishing_gradients",
                f"In epoch {epoch} the first layer's gradient was {ratio:.1e} times the last "
                "layer's: the early layers barely learn. Use relu instead of sigmoid / tanh "
                "in hidden layers, he / xavier initialisation, fewer layers, or "
                "standardised inputs.",
            )
        elif ratio > EXPLODING_RATIO:
            found["exploding_gradients"] = _finding(
                epoch,
                1,
                "exploding_gradients",
                f"In epoch {epoch} the first layer's gradient was {ratio:.1e} times the last "
                "layer's: it grows layer after layer on its way back. Set clip_norm, lower "
                "the learning rate, or start from smaller weights (he / xavier init).",
            )
    return list(found.values())


def learning_rate_high(history: Sequence[Entry]) -> list[Finding]:
    """Loss grown to EXPLODED_FACTOR times its minimum, or oscillating."""
    losses = [(int(e["epoch"]), _number(e, "loss")) for e in history]
    points = [(epoch, loss) for epoch, loss in losses if loss is not None]
    if len(points) < 2:
        return []
    lowest = min(loss for _, loss in points)
    epoch, loss = points[-1]
    if lowest > 0 and loss >= EXPLODED_FACTOR * lowest:
        return [
            _finding(
                epoch,
                None,
                "learning_rate_high",
                f"The loss grew to {loss:.4g} in epoch {epoch}, {loss / lowest:.0f} times its "
                f"lowest ({lowest:.4g}): the steps overshoot. Divide the learning rate by 10, "
                "or set clip_norm.",
            )
        ]
    window = [loss for _, loss in points[-OSCILLATION_WINDOW:]]
    if len(window) < OSCILLATION_WINDOW:
        return []
    steps = [b - a for a, b in pairwise(window)]
    big = [d for d in steps if abs(d) > OSCILLATION_SIZE * max(abs(lowest), 1e-12)]
    flips = sum(1 for a, b in pairwise(big) if (a > 0) != (b > 0))
    if flips < OSCILLATION_FLIPS:
        return []
    return [
        _finding(
            epoch,
            None,
            "learning_rate_high",
            f"The loss went up and down {flips} times in the last {OSCILLATION_WINDOW} epochs "
            "instead of settling: the steps overshoot the minimum. Halve the learning rate, "
            "or use a schedule (step or cosine) that lowers it.",
        )
    ]


def learning_rate_low(history: Sequence[Entry]) -> list[Finding]:
    """Loss flat over FLAT_EPOCHS epochs and every update ratio below LOW_UPDATE_RATIO."""
    if len(history) < FLAT_EPOCHS:
        return []
    recent = history[-FLAT_EPOCHS:]
    losses = [_number(e, "loss") for e in recent]
    ratios = [_number(layer, "update_ratio") for layer in _layers(recent[-1])]
    if any(v is None for v in losses) or not ratios or any(r is None for r in ratios):
        return []
    first, last = losses[0], losses[-1]
    assert first is not None and last is not None
    largest = max(r for r in ratios if r is not None)
    gradients = [_number(layer, "grad_norm") or 0.0 for layer in _layers(recent[-1])]
    if (
        abs(first - last) > FLAT_LOSS * max(abs(first), 1e-12)
        or largest >= LOW_UPDATE_RATIO
        or max(gradients) == 0.0  # no gradient at all (dead units): no rate would help
    ):
        return []
    epoch = int(recent[-1]["epoch"])
    return [
        _finding(
            epoch,
            None,
            "learning_rate_low",
            f"Over the last {FLAT_EPOCHS} epochs the loss moved by {abs(first - last):.2g} and "
            f"no layer's weights moved more than {largest:.1e} of their size per epoch "
            "(a healthy step moves about 1e-3): the learning rate is too small. Multiply it "
            "by 10, or use adam.",
        )
    ]


RULES: tuple[Callable[[Sequence[Entry]], list[Finding]], ...] = (
    overfitting,
    dead_units,
    saturation,
    gradient_flow,
    learning_rate_high,
    learning_rate_low,
)
