"""Findings: plain-language diagnoses of a run, drawn from its history alone.

:class:`Findings` reads the loss curves and the per-layer statistics (``diagnostics``) of
each epoch as it ends and holds the findings of the history so far, each
``{"epoch": e, "layer": l or None, "kind": k, "message": text}`` — layers numbered
1..L like the primer's l — whose message says what was seen and what to try. Each kind
is reported once (per layer where it is about a layer), at the latest epoch that shows
it. ``evaluate(history)`` is the same for a whole history at once (a finished job).

The rules are functions of the whole history, kept incrementally: each rule carries
running aggregates (the lowest loss, the best validation epoch, the latest epoch that
showed a layer's problem) and a bounded window of the last few epochs, so adding an
epoch costs O(layers), whatever the number of epochs before it, and the findings equal
those of a full re-read of the history (tests/engine/test_findings_incremental.py).

The thresholds are the usual rules of thumb, each named with where it comes from.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any, Protocol

Entry = Mapping[str, Any]
Finding = dict[str, Any]

# Overfitting: the validation loss has risen for this many epochs past its best while the
# training loss kept falling (Prechelt, "Early Stopping — But When?", 1998: stop after a
# few epochs of rising validation error; Keras' EarlyStopping patience plays the same role).
OVERFIT_EPOCHS = 5
OVERFIT_RISE = 0.1  # ... its running mean now 10% above its lowest, which noise is not
# Dead ReLUs: "as much as 40% of your network can be dead" is already bad news
# (Karpathy, CS231n notes on activation functions); the issue asks for more than half.
DEAD_FRACTION = 0.5
# Saturation: a hidden sigmoid / tanh layer with most values in its flat tails, where
# g'(z) ≈ 0 and no gradient passes (LeCun et al., "Efficient BackProp", 1998; Glorot &
# Bengio, 2010). The output layer is left out: confident predictions saturate it by design.
SATURATED_FRACTION = 0.5
# Vanishing / exploding gradients: the first layer's gradient norm this many times
# smaller / larger than the last's (Glorot & Bengio, 2010, saw ratios of orders of
# magnitude across a few sigmoid layers; a healthy net stays within about one).
VANISHING_RATIO = 1e-3
EXPLODING_RATIO = 1e3
# Learning rate too high: the loss rose to this many times its lowest value, or
# alternated up and down at least OSCILLATION_FLIPS times over the last
# OSCILLATION_WINDOW epochs by more than OSCILLATION_SIZE of its value (Karpathy, "A
# Recipe for Training Neural Networks", 2019; LeCun et al. 1998: above 2/λmax the loss
# oscillates, then diverges).
EXPLODED_FACTOR = 10.0
OSCILLATION_WINDOW = 8
OSCILLATION_FLIPS = 5
OSCILLATION_SIZE = 0.05
# Learning rate too low: the loss moved by less than FLAT_LOSS (relative) over the last
# FLAT_EPOCHS epochs while every layer's weights moved less than LOW_UPDATE_RATIO of
# their norm in an epoch. Karpathy's recipe puts a healthy update / weight ratio near
# 1e-3 per step; an epoch holds many steps, so 1e-5 per epoch is far below it.
FLAT_EPOCHS = 5
FLAT_LOSS = 1e-3
LOW_UPDATE_RATIO = 1e-5


def evaluate(history: Sequence[Entry], *, diverged: bool = False) -> list[Finding]:
    """The findings of a run with this history; ``diverged``: it ended in non-finite
    values (the epoch after the last entry)."""
    tracker = Findings()
    tracker.extend(history)
    return tracker.current(diverged=diverged)


class Rule(Protocol):
    def add(self, entry: Entry) -> None:
        """Take the next epoch's history entry into account."""

    def found(self) -> list[Finding]:
        """The rule's findings for the entries added so far."""


class Findings:
    """The findings of a history fed one epoch entry at a time (O(layers) per entry)."""

    def __init__(self) -> None:
        self.epochs = 0  # entries added
        self.rules: tuple[Rule, ...] = (
            Overfitting(),
            LayerShare("dead_units"),
            LayerShare("saturation"),
            GradientFlow(),
            LearningRateHigh(),
            LearningRateLow(),
        )

    def add(self, entry: Entry) -> None:
        self.epochs += 1
        for rule in self.rules:
            rule.add(entry)

    def extend(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.add(entry)

    def current(self, *, diverged: bool = False) -> list[Finding]:
        """The findings so far; ``diverged``: the run ended in non-finite values (the
        epoch after the last entry)."""
        found = [finding for rule in self.rules for finding in rule.found()]
        if diverged and not any(f["kind"] == "learning_rate_high" for f in found):
            found.append(
                _finding(
                    self.epochs + 1,
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


class Overfitting:
    """Validation loss rising for OVERFIT_EPOCHS epochs since its best while the training
    loss fell; names the epoch early stopping would have kept. Carries the epochs with
    both losses (a count), the best one (lowest val_loss, the first of equals), the last
    one, and the running OVERFIT_EPOCHS-epoch mean of val_loss with its lowest value."""

    def __init__(self) -> None:
        self.count = 0
        self.best = self.last = (0, 0.0, 0.0)  # (epoch, loss, val_loss)
        self.best_index = 0
        self.window: deque[float] = deque(maxlen=OVERFIT_EPOCHS)  # the last val_losses
        self.means = 0  # how many running means there are (count - OVERFIT_EPOCHS + 1)
        self.mean = self.lowest_mean = 0.0  # the last running mean, the lowest one
        self.lowest_index = 0  # the lowest mean's index (the first of equals)

    def add(self, entry: Entry) -> None:
        loss, val = _number(entry, "loss"), _number(entry, "val_loss")
        if loss is None or val is None:
            return
        self.last = (int(entry["epoch"]), loss, val)
        if self.count == 0 or val < self.best[2]:
            self.best, self.best_index = self.last, self.count
        self.count += 1
        self.window.append(val)
        if len(self.window) == OVERFIT_EPOCHS:
            # The validation loss as a mean over OVERFIT_EPOCHS epochs: the noise of a
            # few validation rows must not read as a trend.
            self.mean = sum(self.window) / OVERFIT_EPOCHS
            if self.means == 0 or self.mean < self.lowest_mean:
                self.lowest_mean, self.lowest_index = self.mean, self.means
            self.means += 1

    def found(self) -> list[Finding]:
        if self.count <= OVERFIT_EPOCHS:
            return []
        epoch, loss, val = self.last
        best_epoch, best_loss, best_val = self.best
        since = self.count - 1 - self.best_index
        if (
            since < OVERFIT_EPOCHS
            or self.means - 1 - self.lowest_index < OVERFIT_EPOCHS  # rising for epochs...
            or self.mean < self.lowest_mean * (1 + OVERFIT_RISE)  # ... by more than noise
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
                f"({best_loss:.4g} → {loss:.4g}): the network is memorising the training "
                f"rows. Early stopping would have kept epoch {best_epoch}'s model: set "
                f"early_stopping (patience {OVERFIT_EPOCHS}), or add data, l2, or use a "
                "smaller network.",
            )
        ]


class LayerShare:
    """``dead_units``: relu / leaky_relu layers with more than DEAD_FRACTION of units never
    active. ``saturation``: hidden sigmoid / tanh layers with more than SATURATED_FRACTION
    of values saturated. Carries each layer's latest finding."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.latest: dict[int, Finding] = {}

    def add(self, entry: Entry) -> None:
        layers = _layers(entry)
        if self.kind == "saturation":
            layers = layers[:-1]  # the output layer saturates by design
        key = "dead_fraction" if self.kind == "dead_units" else "saturated_fraction"
        limit = DEAD_FRACTION if self.kind == "dead_units" else SATURATED_FRACTION
        for number, layer in enumerate(layers, start=1):
            share = _number(layer, key)
            if share is not None and share > limit:
                self.latest[number] = _finding(
                    int(entry["epoch"]), number, self.kind, self._message(share, number, entry)
                )

    def _message(self, share: float, number: int, entry: Entry) -> str:
        if self.kind == "dead_units":
            return (
                f"{share:.0%} of layer {number}'s units were dead in epoch {entry['epoch']}: "
                "z ≤ 0 for every sample, so they output 0 and learn nothing. Lower the "
                "learning rate, use leaky_relu, or check the initial weights and biases "
                "(a large negative bias switches a unit off)."
            )
        return (
            f"{share:.0%} of layer {number}'s activations were within 1% of their bounds "
            f"in epoch {entry['epoch']}, where the slope g'(z) is nearly 0 and the "
            "gradient cannot pass. Standardise the inputs, start from smaller weights "
            "(xavier init), lower the learning rate, or use relu."
        )

    def found(self) -> list[Finding]:
        return list(self.latest.values())


class GradientFlow:
    """First / last layer gradient-norm ratio below VANISHING_RATIO or above
    EXPLODING_RATIO; carries the latest finding of each of the two kinds."""

    def __init__(self) -> None:
        self.latest: dict[str, Finding] = {}

    def add(self, entry: Entry) -> None:
        layers = _layers(entry)
        if len(layers) < 2:
            return
        first, last = _number(layers[0], "grad_norm"), _number(layers[-1], "grad_norm")
        if first is None or last is None or last <= 0:
            return
        ratio, epoch = first / last, int(entry["epoch"])
        if ratio < VANISHING_RATIO:
            self.latest["vanishing_gradients"] = _finding(
                epoch,
                1,
                "vanishing_gradients",
                f"In epoch {epoch} the first layer's gradient was {ratio:.1e} times the last "
                "layer's: the early layers barely learn. Use relu instead of sigmoid / tanh "
                "in hidden layers, he / xavier initialisation, fewer layers, or "
                "standardised inputs.",
            )
        elif ratio > EXPLODING_RATIO:
            self.latest["exploding_gradients"] = _finding(
                epoch,
                1,
                "exploding_gradients",
                f"In epoch {epoch} the first layer's gradient was {ratio:.1e} times the last "
                "layer's: it grows layer after layer on its way back. Set clip_norm, lower "
                "the learning rate, or start from smaller weights (he / xavier init).",
            )

    def found(self) -> list[Finding]:
        return list(self.latest.values())


class LearningRateHigh:
    """Loss grown to EXPLODED_FACTOR times its minimum, or oscillating over the last
    OSCILLATION_WINDOW epochs; carries the lowest loss, the last one and that window."""

    def __init__(self) -> None:
        self.count = 0
        self.lowest = 0.0
        self.last = (0, 0.0)  # (epoch, loss)
        self.window: deque[float] = deque(maxlen=OSCILLATION_WINDOW)

    def add(self, entry: Entry) -> None:
        loss = _number(entry, "loss")
        if loss is None:
            return
        self.lowest = loss if self.count == 0 else min(self.lowest, loss)
        self.count += 1
        self.last = (int(entry["epoch"]), loss)
        self.window.append(loss)

    def found(self) -> list[Finding]:
        if self.count < 2:
            return []
        lowest = self.lowest
        epoch, loss = self.last
        if lowest > 0 and loss >= EXPLODED_FACTOR * lowest:
            return [
                _finding(
                    epoch,
                    None,
                    "learning_rate_high",
                    f"The loss grew to {loss:.4g} in epoch {epoch}, {loss / lowest:.0f} times "
                    f"its lowest ({lowest:.4g}): the steps overshoot. Divide the learning "
                    "rate by 10, or set clip_norm.",
                )
            ]
        if len(self.window) < OSCILLATION_WINDOW:
            return []
        steps = [b - a for a, b in pairwise(self.window)]
        big = [d for d in steps if abs(d) > OSCILLATION_SIZE * max(abs(lowest), 1e-12)]
        flips = sum(1 for a, b in pairwise(big) if (a > 0) != (b > 0))
        if flips < OSCILLATION_FLIPS:
            return []
        return [
            _finding(
                epoch,
                None,
                "learning_rate_high",
                f"The loss went up and down {flips} times in the last {OSCILLATION_WINDOW} "
                "epochs instead of settling: the steps overshoot the minimum. Halve the "
                "learning rate, or use a schedule (step or cosine) that lowers it.",
            )
        ]


class LearningRateLow:
    """Loss flat over FLAT_EPOCHS epochs and every update ratio below LOW_UPDATE_RATIO;
    carries the last FLAT_EPOCHS entries."""

    def __init__(self) -> None:
        self.recent: deque[Entry] = deque(maxlen=FLAT_EPOCHS)

    def add(self, entry: Entry) -> None:
        self.recent.append(entry)

    def found(self) -> list[Finding]:
        if len(self.recent) < FLAT_EPOCHS:
            return []
        losses = [_number(e, "loss") for e in self.recent]
        layers = _layers(self.recent[-1])
        ratios = [_number(layer, "update_ratio") for layer in layers]
        if any(v is None for v in losses) or not ratios or any(r is None for r in ratios):
            return []
        first, last = losses[0], losses[-1]
        assert first is not None and last is not None
        largest = max(r for r in ratios if r is not None)
        gradients = [_number(layer, "grad_norm") or 0.0 for layer in layers]
        if (
            abs(first - last) > FLAT_LOSS * max(abs(first), 1e-12)
            or largest >= LOW_UPDATE_RATIO
            or max(gradients) == 0.0  # no gradient at all (dead units): no rate would help
        ):
            return []
        epoch = int(self.recent[-1]["epoch"])
        return [
            _finding(
                epoch,
                None,
                "learning_rate_low",
                f"Over the last {FLAT_EPOCHS} epochs the loss moved by {abs(first - last):.2g} "
                f"and no layer's weights moved more than {largest:.1e} of their size per "
                "epoch (a healthy step moves about 1e-3): the learning rate is too small. "
                "Multiply it by 10, or use adam.",
            )
        ]


KINDS = (
    "overfitting",
    "dead_units",
    "saturation",
    "vanishing_gradients",
    "exploding_gradients",
    "learning_rate_high",
    "learning_rate_low",
)
