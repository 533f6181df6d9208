"""The CPU of a sweep's trainings trained together (``app.engine.pack``) against the same
trainings one after another, in one process, on one BLAS thread.

The trainings are those of ``sweep.py``'s grid: architectures (32), (64), (32, 32),
(64, 64) relu x learning rates 1e-3, 3e-3, 1e-2, 3e-2 x batch sizes 32, 64, 128, Adam,
40 epochs, on scikit-learn's digits (80% of the rows, 20% of them for validation), with
``diagnostics`` off as a sweep's trials have it. A worker packs the four learning rates of
each (architecture, batch size): here each such group is trained alone, one training
after another (the peer), and as one pack, in alternating order, for ``--rounds``
rounds. Process CPU time (``time.process_time``) is the clock. Every round also checks
that each packed training ends with the weights of the same training alone, bit for bit.

    .venv/bin/python bench/sweep_packs.py [--rounds N] [--quick]
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ARCHITECTURES = [(32,), (64,), (32, 32), (64, 64)]
RATES = [1e-3, 3e-3, 1e-2, 3e-2]
BATCHES = [32, 64, 128]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both arms")
    parser.add_argument("--quick", action="store_true", help="10 epochs instead of 40")
    args = parser.parse_args()
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from app.engine.network import Network
    from app.engine.pack import Member, Pack
    from app.engine.training import OptimizerOptions, Trainer, TrainingOptions
    from app.engine.trainingdata import TrainingData

    conditions = _service.Conditions.collect(scikit_learn=sklearn.__version__)
    print(conditions.describe())
    epochs = 10 if args.quick else 40
    x, y = load_digits(return_X_y=True)
    x_train, _, y_train, _ = train_test_split(
        x.astype(np.float32), y, test_size=0.2, stratify=y, random_state=0
    )
    prepared: dict[str, TrainingData] = {}

    def prepare(network: Network, x: Any, y: Any, **arguments: Any) -> TrainingData:
        # One prepared dataset for every training, as a worker's memo hands it out.
        if "data" not in prepared:
            prepared["data"] = TrainingData.prepare(network, x, y, **arguments)
        return prepared["data"]

    def group(architecture: tuple[int, ...], batch: int) -> list[Trainer]:
        layers = [{"units": u, "activation": "relu"} for u in architecture]
        layers.append({"units": 10, "activation": "softmax"})
        return [
            Trainer(
                Network(64, layers, seed=0),
                x_train,
                y_train,
                TrainingOptions(
                    epochs=epochs,
                    batch_size=batch,
                    optimizer=OptimizerOptions(name="adam", learning_rate=rate),
                    validation_split=0.2,
                    seed=0,
                    diagnostics=False,
                ),
                prepare=prepare,
            )
            for rate in RATES
        ]

    seconds = {"alone": 0.0, "packed": 0.0}
    per_group: dict[tuple[tuple[int, ...], int], dict[str, float]] = {}
    for round_number in range(args.rounds):
        for index, (architecture, batch) in enumerate(
            (a, b) for a in ARCHITECTURES for b in BATCHES
        ):
            arms = ["alone", "packed"] if (index + round_number) % 2 == 0 else ["packed", "alone"]
            params: dict[str, list[np.ndarray]] = {}
            for arm in arms:
                trainers = group(architecture, batch)
                started = time.process_time()
                if arm == "alone":
                    for trainer in trainers:
                        trainer.run()
                else:
                    Pack([Member(trainer) for trainer in trainers]).run(lambda i, outcome: None)
                spent = time.process_time() - started
                seconds[arm] += spent
                times = per_group.setdefault((architecture, batch), {"alone": 0.0, "packed": 0.0})
                times[arm] += spent
                params[arm] = [trainer.network.params.copy() for trainer in trainers]
            same = all(
                np.array_equal(a, b) for a, b in zip(params["alone"], params["packed"], strict=True)
            )
            if not same:
                raise SystemExit(f"{architecture} batch {batch}: packed weights differ from alone")
    print(
        f"48 trainings x {args.rounds} rounds, {epochs} epochs, process CPU; packed weights "
        "bit-identical to alone in every group"
    )
    for (architecture, batch), times in per_group.items():
        print(
            f"  {architecture!s:9s} batch {batch:3d}: alone {times['alone']:.3f} s, packed "
            f"{times['packed']:.3f} s, {times['packed'] / times['alone']:.2f}x"
        )
    ratio = seconds["packed"] / seconds["alone"]
    print(
        f"all: alone {seconds['alone']:.3f} s, packed {seconds['packed']:.3f} s: packed takes "
        f"{ratio:.3f}x the CPU ({1 / ratio:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
