"""Validation of a network description: input size, dense layers, loss, initialiser.

``parse`` turns the user's JSON-like description into an ``Architecture`` or raises a
``ConfigError`` that names the layer (numbered from 1 like W1..WL, with a 0-based
``loc`` into the ``layers`` list) and says what would work instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.engine import activations, initializers, losses
from app.engine.errors import ConfigError

LAYER_KEYS = ("units", "activation")
HIDDEN_CHOICES = "relu, leaky_relu, tanh, sigmoid or linear"


def parameter_count(input_size: int, units: Sequence[int]) -> int:
    """Weights plus biases of a dense network: Σ n[l]·(n[l-1] + 1)."""
    total, previous = 0, input_size
    for n in units:
        total += n * (previous + 1)
        previous = n
    return total


@dataclass(frozen=True)
class Architecture:
    """A validated network description; ``loss`` is resolved (never None)."""

    input_size: int
    layer_sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    init: str


def positive_int(value: object, what: str, loc: tuple[str | int, ...]) -> int:
    """``value`` if it is an int >= 1 (bools are not); ConfigError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(f"{what} must be a positive integer, got {value!r}", loc)


def _layer_name(index: int, count: int) -> str:
    role = "output layer" if index == count - 1 else "hidden layer"
    return f"layer {index + 1} of {count} ({role})"


def _parse_layer(index: int, count: int, layer: object) -> tuple[int, str]:
    loc: tuple[str | int, ...] = ("layers", index)
    name = _layer_name(index, count)
    if not isinstance(layer, Mapping):
        raise ConfigError(
            f"{name} must be an object like {{'units': 8, 'activation': 'relu'}}", loc
        )
    for key in layer:
        if key not in LAYER_KEYS:
            raise ConfigError(
                f"{name} has unknown key {key!r}; a layer has only units and activation",
                (*loc, str(key)),
            )
    for key in LAYER_KEYS:
        if key not in layer:
            raise ConfigError(f"{name} is missing {key!r}", (*loc, key))
    units = positive_int(layer["units"], f"{name}: units", (*loc, "units"))
    activation = layer["activation"]
    activations.get(activation, (*loc, "activation"))
    if activation == "softmax" and index < count - 1:
        raise ConfigError(
            f"{name}: softmax is only valid in the output layer; "
            f"use {HIDDEN_CHOICES} in hidden layers",
            (*loc, "activation"),
        )
    if activation == "softmax" and units == 1:
        raise ConfigError(
            f"{name}: softmax over a single unit is always 1; use sigmoid with 1 unit for two "
            "classes, or softmax with one unit per class (at least 2)",
            (*loc, "units"),
        )
    return units, activation


def _resolve_loss(loss: str | None, output_activation: str, output_name: str) -> str:
    if loss is None:
        return losses.DEFAULT_LOSS.get(output_activation, losses.FALLBACK_LOSS)
    spec = losses.get(loss)
    allowed = spec.output_activations
    if allowed is not None and output_activation not in allowed:
        if spec.name == "binary_crossentropy":
            advice = "use a sigmoid output (1 unit for two classes), or loss 'mse' for regression"
        else:
            advice = (
                "use a softmax output with one unit per class, or binary_crossentropy with a "
                "sigmoid output"
            )
        raise ConfigError(
            f"loss {spec.name} needs a {' or '.join(sorted(allowed))} output, but the "
            f"{output_name} uses {output_activation}; {advice}",
            ("loss",),
        )
    return spec.name


def parse(
    input_size: object, layers: object, loss: object = None, init: object = "auto"
) -> Architecture:
    """Validate a network description.

    input_size: n[0] > 0. layers: non-empty list of {"units": n[l], "activation": name}.
    loss: a name from ``losses.LOSSES`` or None (then it follows the output activation:
    sigmoid → binary_crossentropy, softmax → categorical_crossentropy, else mse).
    init: "auto", "he" or "xavier".
    """
    n_input = positive_int(input_size, "input_size", ("input_size",))
    if not isinstance(layers, Sequence) or isinstance(layers, str) or not layers:
        raise ConfigError(
            "layers must be a non-empty list of {units, activation} objects", ("layers",)
        )
    parsed = [_parse_layer(i, len(layers), layer) for i, layer in enumerate(layers)]
    if loss is not None and not isinstance(loss, str):
        raise ConfigError(f"loss must be a name or null, got {loss!r}", ("loss",))
    output_name = _layer_name(len(parsed) - 1, len(parsed))
    resolved = _resolve_loss(loss, parsed[-1][1], output_name)
    init_name = initializers.check(init)
    return Architecture(
        input_size=n_input,
        layer_sizes=tuple(units for units, _ in parsed),
        activations=tuple(act for _, act in parsed),
        loss=resolved,
        init=init_name,
    )
