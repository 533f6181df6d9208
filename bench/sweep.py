"""A 48-trial hyperparameter grid through `backprop serve` (2 workers) against
scikit-learn's GridSearchCV(MLPClassifier, n_jobs=2), in the same run; then successive
halving on the same grid.

The grid (the issue's target): architectures (32), (64), (32, 32), (64, 64) with relu x
learning rates 1e-3, 3e-3, 1e-2, 3e-2 x batch sizes 32, 64, 128; Adam, 40 epochs, on
scikit-learn's digits (1,797 rows, 64 features, 10 classes). 20% of the rows are a test
set neither side sees while searching. Of the rest, Backprop's sweep holds out 20% for
validation (stratified, seed 0); GridSearchCV gets a PredefinedSplit of exactly those
rows (computed with the engine's own split), and a StandardScaler in its pipeline as
Backprop standardises with the training rows' statistics. Scored by validation accuracy.

Wall time: Backprop from just before POST /v1/sweeps until the sweep's own ``finished_at``
(committed with its last trial's ending: every job's queueing, loading, training and model
commit inside; the bench's status polling, once a second, is not part of it); scikit-learn:
GridSearchCV.fit (refit=False). Both clocks are this machine's.
Test accuracy: each side's best configuration, trained on the same 80% rows (Backprop:
the best trial's model, predicted through the API; scikit-learn: the best parameters fitted
once more on the training rows).

Targets: grid >= 4x faster than GridSearchCV with a best test accuracy within 0.01 of
scikit-learn's; halving >= 2x faster than our grid, best within 0.01 of the grid's best.

    .venv/bin/python bench/sweep.py [--quick] [--rounds N]
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ARCHITECTURES = [(32,), (64,), (32, 32), (64, 64)]
RATES = [1e-3, 3e-3, 1e-2, 3e-2]
BATCHES = [32, 64, 128]
EPOCHS = 40
SEED = 0
TARGET_GRID = 4.0
TARGET_HALVING = 2.0
POLL_SECONDS = 1.0  # between the harness's GETs of a running sweep


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): digits, 80 / 20, stratified, seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.2, stratify=y, random_state=SEED
    )
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def sweep_body(dataset_id: str, strategy: dict[str, Any], epochs: int) -> dict[str, Any]:
    layers = [
        [*({"units": u, "activation": "relu"} for u in a), {"units": 10, "activation": "softmax"}]
        for a in ARCHITECTURES
    ]
    return {
        "name": f"digits-{strategy['name']}",
        "dataset_id": dataset_id,
        "network": {"input_size": 64, "layers": layers[0]},
        "job": {
            "epochs": epochs,
            "optimizer": {"name": "adam"},
            "validation_split": 0.2,
            "seed": SEED,
        },
        "grid": {
            "network.layers": layers,
            "job.optimizer.learning_rate": RATES,
            "job.batch_size": BATCHES,
        },
        "strategy": strategy,
        "metric": "val_accuracy",
    }


def run_sweep(
    client: Any, body: dict[str, Any], x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """Seconds from POST to the sweep's ``finished_at``, its best, and the best model's
    test accuracy."""
    started = time.time()  # the server's timestamps are on this machine's clock
    sweep = _service.check(client.post("/v1/sweeps", json=body), 202)
    while sweep["status"] in ("queued", "running"):
        # The figure is the sweep's own finished_at, so a slower poll changes nothing in it
        # but the API's CPU beside the workers (each GET of 48 trials is ~4 ms of it).
        time.sleep(POLL_SECONDS)
        sweep = _service.check(client.get(f"/v1/sweeps/{sweep['id']}"), 200)
    seconds = _service.parse_time(sweep["finished_at"]) - started
    if sweep["status"] != "succeeded":
        raise RuntimeError(f"the sweep ended {sweep['status']}")
    best = sweep["best"]
    predicted = _service.check(
        client.post(f"/v1/models/{best['model_id']}/predict", json={"x": x_test.tolist()}), 200
    )
    accuracy = float(np.mean(np.asarray(predicted["labels"]) == y_test))
    epochs = sum(t["epochs_run"] for t in sweep["trials"])
    return {"seconds": seconds, "best": best, "test_accuracy": accuracy, "epochs": epochs}


def sklearn_search(
    x: np.ndarray, y: np.ndarray, val_rows: np.ndarray, epochs: int
) -> tuple[float, dict[str, Any], float]:
    """GridSearchCV over the same grid on the same validation rows: (seconds, best
    params, best validation accuracy)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fold = np.full(len(y), -1)
    fold[val_rows] = 0  # the one validation fold; every other row trains
    pipeline = make_pipeline(
        StandardScaler(),
        MLPClassifier(
            solver="adam", max_iter=epochs, n_iter_no_change=epochs + 1, random_state=SEED
        ),
    )
    grid = {
        "mlpclassifier__hidden_layer_sizes": ARCHITECTURES,
        "mlpclassifier__learning_rate_init": RATES,
        "mlpclassifier__batch_size": BATCHES,
    }
    search = GridSearchCV(pipeline, grid, cv=PredefinedSplit(fold), n_jobs=2, refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        search.fit(x, y)
        seconds = time.perf_counter() - started
    return seconds, dict(search.best_params_), float(search.best_score_)


def sklearn_test_accuracy(
    params: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    train_rows: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    epochs: int,
) -> float:
    """The best parameters fitted on the training rows alone (as Backprop's best model)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        MLPClassifier(
            solver="adam", max_iter=epochs, n_iter_no_change=epochs + 1, random_state=SEED
        ),
    )
    model.set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x[train_rows], y[train_rows])
    return float(model.score(x_test, y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 epochs instead of 40")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of (grid, halving, GridSearchCV), each ratio within one round",
    )
    args = parser.parse_args()
    epochs = 10 if args.quick else EPOCHS
    import sklearn

    from app.engine import splitting

    conditions = _service.Conditions.collect(scikit_learn=sklearn.__version__)
    x, y, x_test, y_test = digits()
    train_rows, val_rows = splitting.split(len(y), 0.2, y.astype(np.intp), SEED)
    print(conditions.describe())
    print(
        f"digits: {len(y)} rows to search on ({len(train_rows)} train, {len(val_rows)} "
        f"validation), {len(y_test)} test; 48 configurations, {epochs} epochs; 2 workers / n_jobs=2"
    )

    blas = {"BACKPROP_BLAS_THREADS": "1"}
    halving_strategy = {"name": "halving", "factor": 3, "min_epochs": max(1, epochs // 8)}
    rounds: list[dict[str, Any]] = []
    with _service.running_service(workers=2, extra_env=blas) as service, service.client() as client:
        npz = _service_npz(x, y)
        dataset = _service.upload_npz(client, name="digits", npz=npz)
        for number in range(1, args.rounds + 1):
            # One round: our grid, our halving, then GridSearchCV (with our workers idle),
            # so each ratio compares runs a few seconds apart.
            grid = run_sweep(
                client, sweep_body(dataset["id"], {"name": "grid"}, epochs), x_test, y_test
            )
            load = _service.load_average()
            print(f"round {number}: backprop grid {grid['seconds']:.2f} s; load {load}")
            halving = run_sweep(
                client, sweep_body(dataset["id"], halving_strategy, epochs), x_test, y_test
            )
            print(
                f"round {number}: backprop halving {halving['seconds']:.2f} s; load "
                f"{_service.load_average()}"
            )
            sk_seconds, sk_params, sk_val = sklearn_search(x, y, val_rows, epochs)
            print(
                f"round {number}: GridSearchCV {sk_seconds:.2f} s; load {_service.load_average()}"
            )
            rounds.append({"grid": grid, "halving": halving, "sk": (sk_seconds, sk_params, sk_val)})
    sk_seconds, sk_params, sk_val = rounds[-1]["sk"]
    grid, halving = rounds[-1]["grid"], rounds[-1]["halving"]
    sk_test = sklearn_test_accuracy(sk_params, x, y, train_rows, x_test, y_test, epochs)

    rows = [
        [
            "GridSearchCV(MLPClassifier), n_jobs=2",
            f"{sk_seconds:.1f}",
            f"48 x {epochs}",
            f"{sk_val:.4f}",
            f"{sk_test:.4f}",
            "1.00",
        ],
        [
            "backprop sweep, grid, 2 workers",
            f"{grid['seconds']:.1f}",
            str(grid["epochs"]),
            f"{grid['best']['score']:.4f}",
            f"{grid['test_accuracy']:.4f}",
            f"{sk_seconds / grid['seconds']:.2f}",
        ],
        [
            f"backprop sweep, halving (3, {halving_strategy['min_epochs']})",
            f"{halving['seconds']:.1f}",
            str(halving["epochs"]),
            f"{halving['best']['score']:.4f}",
            f"{halving['test_accuracy']:.4f}",
            f"{sk_seconds / halving['seconds']:.2f}",
        ],
    ]
    print(f"the last round (of {len(rounds)}):")
    _service.print_table(
        ["search", "wall s", "epochs", "best val acc", "best test acc", "x faster than sklearn"],
        rows,
    )
    grid_ratios = [r["sk"][0] / r["grid"]["seconds"] for r in rounds]
    halving_ratios = [r["grid"]["seconds"] / r["halving"]["seconds"] for r in rounds]
    print(
        f"grid vs GridSearchCV, per round: {_ratios(grid_ratios)} (target >= {TARGET_GRID}x); "
        f"test accuracy {grid['test_accuracy']:.4f} vs {sk_test:.4f} (target: within 0.01)"
    )
    print(
        f"halving vs grid, per round: {_ratios(halving_ratios)} (target >= {TARGET_HALVING}x); "
        f"test accuracy {halving['test_accuracy']:.4f} vs {grid['test_accuracy']:.4f} "
        "(target: within 0.01)"
    )
    accuracies = {(r["grid"]["test_accuracy"], r["halving"]["test_accuracy"]) for r in rounds}
    print(f"test accuracies (grid, halving) over the rounds: {sorted(accuracies)}")
    print(f"best: backprop grid trial {grid['best']['params']}; sklearn {sk_params}")
    print(f"load average at the end {_service.load_average()}")


def _ratios(values: list[float]) -> str:
    """The ratios in round order, and their median when there are several."""
    listed = " / ".join(f"{v:.2f}x" for v in values)
    if len(values) == 1:
        return listed
    return f"{listed}; median {float(np.median(values)):.2f}x"


def _service_npz(x: np.ndarray, y: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
