"""Regenerate ``optimizer_reference.npz``: optimizer trajectories computed by PyTorch, so
that tests/engine/test_optimizers.py cross-checks our optimizers without torch installed.

How the stored file was made (2026-12-01): torch 2.13.0+cpu and numpy 2.4.6 on
Python 3.11.7, in a virtual environment of their own (the project never depends on torch):

    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy \\
        --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
    /tmp/torchenv/bin/python tests/engine/make_optimizer_reference.py

Inputs: ``numpy.random.default_rng(SEED)`` draws p0, SIZE standard normals, then STEPS
gradients of SIZE standard normals each, in float64 (stored as ``p0`` and ``grads``).
The first WEIGHTS entries play the weights (the L2 penalty applies to them only, as in
``Network.params``), the rest the biases.

For every case in CASES and each dtype (float64, float32), one torch tensor starts at
p0 (cast to the dtype) and takes STEPS steps: ``.grad`` is set to the gradient (cast),
clipping, when the case has it, is ``torch.nn.utils.clip_grad_norm_`` on that gradient,
then ``optimizer.step()``. ``<case>_<dtype>`` (STEPS, SIZE) holds the parameters after
each step. Our L2 penalty is torch's ``weight_decay`` on a parameter group holding the
weights (SGD and Adam add weight_decay·p to the gradient, as we add l2·W).

Where the two libraries agree only under conditions, the cases keep to them: the
learning rate is constant (torch's momentum buffer leaves lr out and ours keeps it in, so
they part when a schedule changes lr); L2 and clipping are never combined (torch clips
``.grad`` before ``step()`` adds the decay, we clip the penalised gradient); and
``clip_grad_norm_`` divides by norm + 1e-6 where we divide by the norm, a relative
difference near 2e-7 that the test allows for in the clipped cases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SEED = 20261201
SIZE = 30
WEIGHTS = 24
STEPS = 6
DTYPES = ("float64", "float32")
FIXTURE = Path(__file__).with_name("optimizer_reference.npz")

# name -> our options: OptimizerOptions fields, plus l2 and clip_norm (TrainingOptions).
CASES: dict[str, dict[str, Any]] = {
    "sgd": {"name": "sgd", "learning_rate": 0.05},
    "momentum": {"name": "momentum", "learning_rate": 0.05, "momentum": 0.8},
    "nesterov": {"name": "momentum", "learning_rate": 0.05, "momentum": 0.8, "nesterov": True},
    "adam": {"name": "adam", "learning_rate": 0.05},
    "adam_betas": {
        "name": "adam",
        "learning_rate": 0.01,
        "beta1": 0.8,
        "beta2": 0.99,
        "epsilon": 1e-6,
    },
    "sgd_l2": {"name": "sgd", "learning_rate": 0.05, "l2": 0.1},
    "nesterov_l2": {
        "name": "momentum",
        "learning_rate": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "l2": 0.01,
    },
    "adam_l2": {"name": "adam", "learning_rate": 0.02, "l2": 0.05},
    "sgd_clip": {"name": "sgd", "learning_rate": 0.05, "clip_norm": 1.0},
    "momentum_clip": {"name": "momentum", "learning_rate": 0.05, "momentum": 0.8, "clip_norm": 2.0},
}


def inputs() -> tuple[np.ndarray, np.ndarray]:
    """p0 (SIZE,) and the gradients (STEPS, SIZE), float64."""
    rng = np.random.default_rng(SEED)
    p0 = rng.standard_normal(SIZE)
    grads = np.stack([rng.standard_normal(SIZE) for _ in range(STEPS)])
    return p0, grads


def torch_trajectory(case: dict[str, Any], dtype: str) -> np.ndarray:
    """The parameters after each of the STEPS steps of ``case`` in torch, (STEPS, SIZE)."""
    import torch

    p0, grads = inputs()
    kind = getattr(torch, dtype)
    weights = torch.tensor(p0[:WEIGHTS], dtype=kind, requires_grad=True)
    biases = torch.tensor(p0[WEIGHTS:], dtype=kind, requires_grad=True)
    groups = [
        {"params": [weights], "weight_decay": case.get("l2", 0.0)},
        {"params": [biases], "weight_decay": 0.0},
    ]
    lr = case["learning_rate"]
    peer: torch.optim.Optimizer
    if case["name"] == "sgd":
        peer = torch.optim.SGD(groups, lr=lr)
    elif case["name"] == "momentum":
        nesterov = case.get("nesterov", False)
        peer = torch.optim.SGD(groups, lr=lr, momentum=case["momentum"], nesterov=nesterov)
    else:
        betas = (case.get("beta1", 0.9), case.get("beta2", 0.999))
        peer = torch.optim.Adam(groups, lr=lr, betas=betas, eps=case.get("epsilon", 1e-8))
    trajectory = []
    for g in grads:
        weights.grad = torch.tensor(g[:WEIGHTS], dtype=kind)
        biases.grad = torch.tensor(g[WEIGHTS:], dtype=kind)
        if "clip_norm" in case:
            torch.nn.utils.clip_grad_norm_([weights, biases], case["clip_norm"])
        peer.step()
        trajectory.append(torch.cat([weights.detach(), biases.detach()]).numpy().copy())
    return np.stack(trajectory)


def main() -> None:
    import torch

    torch.use_deterministic_algorithms(True)
    p0, grads = inputs()
    arrays = {"p0": p0, "grads": grads}
    for name, case in CASES.items():
        for dtype in DTYPES:
            arrays[f"{name}_{dtype}"] = torch_trajectory(case, dtype)
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
