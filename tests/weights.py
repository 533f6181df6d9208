"""Weights for ``POST /v1/models/import``: a fresh engine network's arrays in the export
format (W1.., b1..), as they are or with their first layer made dead."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from app.engine.network import Network as EngineNetwork

# The keys of a network body (GET /v1/networks/{id}) that make its engine config.
ENGINE_KEYS = ("input_size", "layers", "loss", "init", "seed")
# A bias that keeps every pre-activation of its layer negative: a relu layer stays dead.
DEAD_BIAS = -100.0


def engine_config(network: dict[str, Any]) -> dict[str, Any]:
    """The engine's config of a network body."""
    return {k: network[k] for k in ENGINE_KEYS}


def fresh_arrays(network_config: dict[str, Any]) -> dict[str, np.ndarray]:
    """A fresh engine network's weights: W{l}: (n_l, n_{l-1}), b{l}: (n_l,)."""
    net = EngineNetwork.from_config(network_config)
    arrays = {f"W{i + 1}": w for i, w in enumerate(net.weights)}
    arrays.update({f"b{i + 1}": b for i, b in enumerate(net.biases)})
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def export_npz(network_config: dict[str, Any]) -> bytes:
    """Weights of a fresh engine network, in the export format (W1.., b1..)."""
    return npz_bytes(fresh_arrays(network_config))


def dead_layer_npz(network: dict[str, Any]) -> bytes:
    """The network body's fresh weights with a bias of -100 on every unit of layer 1."""
    arrays = fresh_arrays(engine_config(network))
    arrays["b1"] = np.full_like(arrays["b1"], DEAD_BIAS)
    return npz_bytes(arrays)
