"""Training throughput of our engine against PyTorch CPU eager and scikit-learn, in one run.

For each case (layer sizes, batch size) every contender trains the same architecture
(relu hidden layers; one sigmoid unit or a 10-way softmax with cross-entropy) on the same
float32 data with the same batch size and optimizer (plain SGD lr 0.01, and Adam lr 0.001):

- ours: ``Trainer.run`` exactly as the worker calls it — shuffling, per-epoch metrics,
  the per-batch stop flag (a deadline check) and an epoch callback all included;
- reference NumPy: ``bench/reference_mlp.py``, the "careful hand-written NumPy MLP" the
  engine issue measured its targets with (5.3x, 4.5x, 1.7x, 1.8x PyTorch with SGD on its
  machine). Its targets "mean the full engine loses nothing to that bare loop": the
  ours/reference line says whether it does, here, in the same run;
- ours (bare step): the engine's forward / backward / SGD step on pre-shuffled batches,
  without the Trainer, to show what the training loop itself costs;
- torch: the usual eager loop (randperm per epoch, index, zero_grad, forward, loss,
  backward, step, loss.item());
- sklearn: ``MLPClassifier.partial_fit`` with float64 data (its default, which the target
  is about) and float32 data (shown for information);
- GEMM bound: only the matrix products of forward and backward for the same shapes
  (z = a·Wᵀ per layer, dW = dZᵀ·a and dA = dZ·W), i.e. the time no NumPy engine can beat;
- torch GEMM bound: the same products with torch.mm. The ratio of the two GEMM bounds is
  how much faster NumPy's matrix multiply is than the peer's on this machine, and our GEMM
  bound over torch's training rate is the ceiling of ours/torch: the ratio a NumPy engine
  with zero non-GEMM cost would reach. The targets of the issue were set on a machine
  where NumPy's GEMM ran 2.2x faster than torch's; each target line prints this ceiling.

Contenders are measured in interleaved rounds and the best round counts, which keeps
the comparison fair on a shared, noisy machine. The script removes OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE from its environment (re-executing itself before NumPy loads OpenBLAS)
and prints the BLAS kernel and thread counts threadpoolctl reports. It also prints the
forward-pass latency of 784-256-128-10 for 1 and 256 rows against torch.

``--diagnostics`` measures only what the per-layer statistics (``diagnostics``, on by
default) cost: ``--instances`` trainers (default 6) with them off and as many on, one
quarter of an epoch each in rotating order, every step timed, with an A/A control from
the off trainers and 95% intervals (``_diagnostics_cost.py``); ``--seconds`` is then the
measuring time per case (default 60). It runs BLAS on one thread unless ``--threads`` says
otherwise: a worker's count on this machine (``backprop serve`` gives each worker cores ÷
workers threads).

Usage: python bench/train_throughput.py [--quick] [--seconds S] [--rounds R] [--threads N]
       [--diagnostics [--instances K]]
"""

from __future__ import annotations

import os
import sys

_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(name in os.environ for name in _OVERRIDES):  # must happen before NumPy is imported
    removed = ",".join(name for name in _OVERRIDES if name in os.environ)
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    env["BACKPROP_BENCH_REMOVED"] = removed
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)

import argparse  # noqa: E402
import functools  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from itertools import pairwise  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from app.engine.network import Network  # noqa: E402
from app.engine.optimizers import SGD  # noqa: E402
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions  # noqa: E402

RATES = {"sgd": 0.01, "adam": 0.001}
clock = time.perf_counter  # what elapsed time is measured with (--clock cpu: process CPU time)


@dataclass(frozen=True)
class Case:
    sizes: tuple[int, ...]
    batch: int
    rows: int
    target_sgd: float  # ours / torch
    target_adam: float
    target_bound: float | None  # ours / GEMM-only bound, SGD

    @property
    def name(self) -> str:
        return "-".join(map(str, self.sizes))


CASES = [
    Case((2, 8, 8, 1), 32, 8192, 5.0, 4.0, None),
    Case((64, 64, 10), 64, 8192, 4.0, 4.0, None),
    Case((784, 256, 128, 10), 128, 8192, 1.7, 1.5, 0.65),
    Case((1024, 1024, 1024, 10), 256, 4096, 1.8, 1.4, 0.8),
]
SKLEARN_TARGET = 2.5
DIAGNOSTICS_TARGETS = {"2-8-8-1": 0.10, "784-256-128-10": 0.03}  # share of training time


def make_data(case: Case, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, case.sizes[0])).astype(np.float32)
    classes = 2 if case.sizes[-1] == 1 else case.sizes[-1]
    return x, rng.integers(0, classes, rows)


def until(deadline: float) -> Callable[[], bool]:
    return lambda: time.perf_counter() >= deadline


# --- contenders: each has measure(seconds) -> samples per second -----------------------


class Ours:
    def __init__(
        self, case: Case, x: np.ndarray, y: np.ndarray, optimizer: str, diagnostics: bool = True
    ) -> None:
        hidden = [{"units": n, "activation": "relu"} for n in case.sizes[1:-1]]
        out = {
            "units": case.sizes[-1],
            "activation": "sigmoid" if case.sizes[-1] == 1 else "softmax",
        }
        net = Network(case.sizes[0], [*hidden, out], seed=0)
        options = TrainingOptions(
            epochs=1_000_000,
            batch_size=case.batch,
            optimizer=OptimizerOptions(name=optimizer, learning_rate=RATES[optimizer]),
            validation_split=0.0,  # like the other contenders: train on every row
            diagnostics=diagnostics,
        )
        self.trainer = Trainer(net, x, y, options)
        self.epochs: list[dict[str, float]] = []

    def measure(self, seconds: float) -> float:
        before, start = self.trainer.samples_trained, clock()
        deadline = time.perf_counter() + seconds
        self.trainer.run(should_stop=until(deadline), on_epoch=self.epochs.append)
        return (self.trainer.samples_trained - before) / (clock() - start)


class OursBare:
    """The engine's step without the Trainer: forward, backward, SGD on fixed batches."""

    def __init__(self, case: Case, x: np.ndarray, y: np.ndarray) -> None:
        hidden = [{"units": n, "activation": "relu"} for n in case.sizes[1:-1]]
        out = {
            "units": case.sizes[-1],
            "activation": "sigmoid" if case.sizes[-1] == 1 else "softmax",
        }
        self.net = Network(case.sizes[0], [*hidden, out], seed=0)
        k = case.sizes[-1]
        targets = y.reshape(-1, 1).astype(np.float32) if k == 1 else np.eye(k, dtype=np.float32)[y]
        self.grads = np.zeros_like(self.net.params)
        self.work = self.net.workspace(case.batch, self.grads)
        usable = x.shape[0] // case.batch * case.batch
        self.batches = [
            (x[i : i + case.batch], targets[i : i + case.batch])
            for i in range(0, usable, case.batch)
        ]
        self.sgd = SGD(self.net.params, OptimizerOptions(name="sgd", learning_rate=RATES["sgd"]))

    def measure(self, seconds: float) -> float:
        params, grads, work, step = self.net.params, self.grads, self.work, self.sgd.step
        samples, start = 0, clock()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for xb, yb in self.batches:
                work.forward(xb)
                work.backward(xb, yb)
                step(params, grads)
            samples += len(self.batches) * self.batches[0][0].shape[0]
        return samples / (clock() - start)


class Reference:
    """bench/reference_mlp.py: the careful hand-written NumPy loop of the engine issue."""

    def __init__(self, case: Case, x: np.ndarray, y: np.ndarray, optimizer: str) -> None:
        from reference_mlp import ReferenceMLP

        k = case.sizes[-1]
        targets = y.reshape(-1, 1).astype(np.float32) if k == 1 else np.eye(k, dtype=np.float32)[y]
        self.mlp = ReferenceMLP(case.sizes, case.batch, x, targets, optimizer, RATES[optimizer])

    def measure(self, seconds: float) -> float:
        step, samples, start = self.mlp.step, 0, clock()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            samples += step()
        return samples / (clock() - start)


class Torch:
    def __init__(self, case: Case, x: np.ndarray, y: np.ndarray, optimizer: str) -> None:
        import torch

        self.torch = torch
        torch.manual_seed(0)
        layers: list[Any] = []
        for n_in, n_out in zip(case.sizes[:-2], case.sizes[1:-1], strict=True):
            layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(case.sizes[-2], case.sizes[-1]))
        self.net = torch.nn.Sequential(*layers)
        self.x = torch.from_numpy(x)
        if case.sizes[-1] == 1:
            self.y = torch.from_numpy(y.astype(np.float32).reshape(-1, 1))
            self.loss: Any = torch.nn.BCEWithLogitsLoss()
        else:
            self.y = torch.from_numpy(y.astype(np.int64))
            self.loss = torch.nn.CrossEntropyLoss()
        params = self.net.parameters()
        rate = RATES[optimizer]
        self.opt = (
            torch.optim.SGD(params, lr=rate)
            if optimizer == "sgd"
            else torch.optim.Adam(params, lr=rate)
        )
        self.batch, self.order, self.pos, self.running = (
            case.batch,
            torch.randperm(x.shape[0]),
            0,
            0.0,
        )

    def measure(self, seconds: float) -> float:
        n, samples, start = self.x.shape[0], 0, clock()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if self.pos >= n:
                self.order, self.pos, self.running = self.torch.randperm(n), 0, 0.0
            idx = self.order[self.pos : self.pos + self.batch]
            self.pos += self.batch
            xb, yb = self.x[idx], self.y[idx]
            self.opt.zero_grad()
            loss = self.loss(self.net(xb), yb)
            loss.backward()
            self.opt.step()
            self.running += loss.item() * len(idx)
            samples += len(idx)
        return samples / (clock() - start)


class Sklearn:
    def __init__(
        self, case: Case, x: np.ndarray, y: np.ndarray, optimizer: str, dtype: Any
    ) -> None:
        from sklearn.neural_network import MLPClassifier

        self.model = MLPClassifier(
            hidden_layer_sizes=case.sizes[1:-1],
            activation="relu",
            solver=optimizer,
            learning_rate_init=RATES[optimizer],
            batch_size=case.batch,
            momentum=0.0,
            nesterovs_momentum=False,
            alpha=0.0,
            shuffle=True,
            random_state=0,
        )
        self.chunk = min(x.shape[0], case.batch * 4)  # rows per partial_fit call
        self.x, self.y, self.pos = x.astype(dtype), y, 0
        self.model.partial_fit(self.x[: self.chunk], y[: self.chunk], classes=np.unique(y))

    def measure(self, seconds: float) -> float:
        samples, start = 0, clock()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if self.pos + self.chunk > self.x.shape[0]:
                self.pos = 0
            part = slice(self.pos, self.pos + self.chunk)
            self.model.partial_fit(self.x[part], self.y[part])
            self.pos += self.chunk
            samples += self.chunk
        return samples / (clock() - start)


class GemmBound:
    """Only the products of forward and backward, in preallocated float32 buffers."""

    def __init__(self, case: Case) -> None:
        rng = np.random.default_rng(0)
        m, sizes = case.batch, case.sizes

        def rand(*shape: int) -> np.ndarray:
            return rng.standard_normal(shape).astype(np.float32)

        self.a = [rand(m, n) for n in sizes]  # a[0] is the input batch
        self.w_t = [rand(n, n_prev).T for n_prev, n in pairwise(sizes)]
        self.d = [rand(m, n) for n in sizes]
        self.dw = [np.empty((n, n_prev), np.float32) for n_prev, n in pairwise(sizes)]
        self.batch = m

    def measure(self, seconds: float) -> float:
        a, w_t, d, dw = self.a, self.w_t, self.d, self.dw
        layers = len(w_t)
        steps, start = 0, clock()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for i in range(layers):
                np.dot(a[i], w_t[i], out=a[i + 1])  # z = a_prev·Wᵀ
            for i in range(layers - 1, -1, -1):
                np.dot(d[i + 1].T, a[i], out=dw[i])  # dW = dZᵀ·a_prev
                if i:
                    np.dot(d[i + 1], w_t[i].T, out=d[i])  # dA_prev = dZ·W
            steps += 1
        return steps * self.batch / (clock() - start)


class TorchGemmBound:
    """The same products as ``GemmBound`` with torch.mm into preallocated tensors: how fast
    the peer's matrix multiply is on this machine. Our GEMM bound over the peer's training
    rate is the highest ours/torch ratio any NumPy engine can reach here."""

    def __init__(self, case: Case) -> None:
        import torch

        self.torch = torch
        bound = GemmBound(case)
        self.a = [torch.from_numpy(a) for a in bound.a]
        self.w_t = [torch.from_numpy(np.ascontiguousarray(w.T)).T for w in bound.w_t]
        self.d = [torch.from_numpy(d) for d in bound.d]
        self.dw = [torch.from_numpy(dw) for dw in bound.dw]
        self.batch = bound.batch

    def measure(self, seconds: float) -> float:
        mm, a, w_t, d, dw = self.torch.mm, self.a, self.w_t, self.d, self.dw
        layers = len(w_t)
        steps, start = 0, clock()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for i in range(layers):
                mm(a[i], w_t[i], out=a[i + 1])
            for i in range(layers - 1, -1, -1):
                mm(d[i + 1].T, a[i], out=dw[i])
                if i:
                    mm(d[i + 1], w_t[i].T, out=d[i])
            steps += 1
        return steps * self.batch / (clock() - start)


# --- reporting ----------------------------------------------------------------------------


def environment(threads: int | None) -> list[str]:
    import sklearn
    import torch
    from threadpoolctl import threadpool_info

    if threads is not None:
        torch.set_num_threads(threads)
    cpu = platform.processor() or "?"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    removed = os.environ.get("BACKPROP_BENCH_REMOVED")
    lines = [
        f"python {platform.python_version()}  numpy {np.__version__}  torch {torch.__version__}  "
        f"scikit-learn {sklearn.__version__}",
        f"cpu: {cpu}, {os.cpu_count()} logical cores; load average {os.getloadavg()[0]:.2f}",
        "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: unset"
        + (f" (removed {removed} and re-executed)" if removed else " (were not set)"),
        f"torch threads: {torch.get_num_threads()} intra-op, "
        f"{torch.get_num_interop_threads()} inter-op",
        "threadpoolctl:",
    ]
    for info in threadpool_info():
        lines.append(
            f"  {info.get('user_api')}/{info.get('internal_api')} {info.get('version')} "
            f"kernel={info.get('architecture', '-')} threads={info.get('num_threads')} "
            f"layer={info.get('threading_layer', '-')} ({Path(str(info.get('filepath'))).name})"
        )
    return lines


def latency_us(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    for _ in range(max(50, calls // 10)):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        fn()
        times[i] = time.perf_counter_ns() - start
    return float(np.percentile(times, 50)) / 1e3, float(np.percentile(times, 99)) / 1e3


def inference(quick: bool) -> list[str]:
    import torch

    case = CASES[2]
    hidden = [{"units": n, "activation": "relu"} for n in case.sizes[1:-1]]
    net = Network(case.sizes[0], [*hidden, {"units": 10, "activation": "softmax"}], seed=0)
    peer = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
        torch.nn.Softmax(dim=1),
    ).eval()
    lines = [
        f"forward-pass latency, {case.name} "
        "(ours: Network.forward; torch: inference_mode, same layers + softmax)",
        f"  {'rows':>5}  {'ours p50':>9} {'ours p99':>9}  {'torch p50':>9} {'torch p99':>9}"
        "  target p50",
    ]
    for rows, calls, target in ((1, 3000, 20.0), (256, 600, 400.0)):
        calls = calls // 5 if quick else calls
        x = np.random.default_rng(1).standard_normal((rows, 784)).astype(np.float32)
        ours = latency_us(lambda x=x: net.forward(x), calls)
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            theirs = latency_us(lambda xt=xt: peer(xt), calls)
        verdict = "ok" if ours[0] <= target else "MISSED"
        lines.append(
            f"  {rows:>5}  {ours[0]:>7.1f}us {ours[1]:>7.1f}us  "
            f"{theirs[0]:>7.1f}us {theirs[1]:>7.1f}us  <= {target:.0f}us {verdict}"
        )
    return lines


def run_case(case: Case, rows: int, seconds: float, rounds: int) -> tuple[list[str], list[str]]:
    x, y = make_data(case, rows)
    contenders: dict[tuple[str, str], Any] = {}
    for optimizer in ("sgd", "adam"):
        contenders[("ours", optimizer)] = Ours(case, x, y, optimizer)
        contenders[("reference NumPy", optimizer)] = Reference(case, x, y, optimizer)
        contenders[("torch", optimizer)] = Torch(case, x, y, optimizer)
        contenders[("sklearn f64", optimizer)] = Sklearn(case, x, y, optimizer, np.float64)
        contenders[("sklearn f32", optimizer)] = Sklearn(case, x, y, optimizer, np.float32)
    contenders[("ours (bare step)", "sgd")] = OursBare(case, x, y)
    contenders[("GEMM bound", "-")] = GemmBound(case)
    contenders[("torch GEMM bound", "-")] = TorchGemmBound(case)
    best = dict.fromkeys(contenders, 0.0)
    for contender in contenders.values():  # warm-up: first allocations, lazy inits, caches
        contender.measure(min(0.2, seconds / 2))
    for _ in range(rounds):
        for key, contender in contenders.items():
            time.sleep(0.05)  # let other libraries' spinning threads go to sleep
            best[key] = max(best[key], contender.measure(seconds / rounds))
    table = [
        f"case {case.name}, batch {case.batch}, {rows} rows, "
        f"best of {rounds} rounds x {seconds / rounds:.2f}s"
    ]
    table.append(f"  {'contender':<18} {'optimizer':<9} {'samples/s':>12}  {'ours/this':>9}")
    for (name, optimizer), rate in best.items():
        ours = best[("ours", optimizer if optimizer != "-" else "sgd")]
        table.append(f"  {name:<18} {optimizer:<9} {rate:>12,.0f}  {ours / rate:>8.2f}x")
    gemm = best[("GEMM bound", "-")]
    table.append(
        f"  GEMM speed here, numpy/torch: {gemm / best[('torch GEMM bound', '-')]:.2f} "
        "(the issue's reference machine: 415/190 GFLOP/s = 2.18)"
    )
    checks = []
    for optimizer, target in (("sgd", case.target_sgd), ("adam", case.target_adam)):
        peer = best[("torch", optimizer)]
        checks.append(
            verdict(f"{case.name} {optimizer} ours/torch", best[("ours", optimizer)] / peer, target)
            + f"; ceiling here {gemm / peer:.2f}"
        )
        ratio = best[("ours", optimizer)] / best[("sklearn f64", optimizer)]
        checks.append(verdict(f"{case.name} {optimizer} ours/sklearn f64", ratio, SKLEARN_TARGET))
        reference = best[("reference NumPy", optimizer)]
        checks.append(
            verdict(
                f"{case.name} {optimizer} ours/reference NumPy",
                best[("ours", optimizer)] / reference,
                1.0,
            )
            + f"; reference/torch here {reference / peer:.2f}"
        )
    if case.target_bound is not None:
        ratio = best[("ours", "sgd")] / best[("GEMM bound", "-")]
        checks.append(verdict(f"{case.name} sgd ours/GEMM bound", ratio, case.target_bound))
    return table, checks


def _diagnosed(case: Case, x: np.ndarray, y: np.ndarray, on: bool) -> Trainer:
    """A trainer of ``case`` (SGD) with diagnostics on or off, for ``--diagnostics``."""
    return Ours(case, x, y, "sgd", diagnostics=on).trainer


def verdict(label: str, ratio: float, target: float) -> str:
    status = "ok" if ratio >= target else f"MISSED by {(target - ratio) / target:.0%}"
    return f"  {label:<40} {ratio:>6.2f}  (target >= {target:g})  {status}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="short measurements, fewer rows (about a minute)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="measuring time per contender per case"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds per case (best counts)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="BLAS and torch threads (default: as found)"
    )
    parser.add_argument(
        "--cases", default=None, help="comma-separated case names, e.g. 2-8-8-1,64-64-10"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time throughput by wall clock (default) or by process CPU time; cpu needs "
        "--threads 1 and keeps the numbers usable on a loaded, shared machine",
    )
    parser.add_argument(
        "--diagnostics",
        action="store_true",
        help="only measure what the per-layer statistics cost (diagnostics off / on; NumPy only)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=6,
        help="with --diagnostics: trainers per arm (off / on; default 6)",
    )
    args = parser.parse_args()
    if args.clock == "cpu":
        if args.threads != 1:
            parser.error("--clock cpu needs --threads 1 (other threads' spinning would count)")
        global clock
        clock = time.process_time
    seconds = args.seconds if args.seconds is not None else (0.4 if args.quick else 2.4)
    if args.diagnostics:
        from threadpoolctl import threadpool_info, threadpool_limits

        budget = args.seconds if args.seconds is not None else (10.0 if args.quick else 60.0)
        from _diagnostics_cost import diagnostics_cost

        cases = [
            (case, target, functools.partial(_diagnosed, case, *make_data(case, case.rows)))
            for case in CASES
            if (target := DIAGNOSTICS_TARGETS.get(case.name)) is not None
            and (args.cases is None or case.name in args.cases.split(","))
        ]
        # A worker's BLAS threads unless told: `backprop serve` gives each worker cores ÷
        # workers (1 here, two workers on two cores). Pinning the process to one core below
        # pins only this thread, so BLAS threads beyond it would run on the other core.
        threads = args.threads if args.threads is not None else 1
        with threadpool_limits(limits=threads):
            info = [
                f"{i['internal_api']} kernel={i.get('architecture', '-')} "
                f"threads={i['num_threads']}"
                for i in threadpool_info()
            ]
            lines = diagnostics_cost(cases, budget, clock, args.instances)
        print(f"throughput clock: {'process CPU time' if args.clock == 'cpu' else 'wall clock'}")
        origin = "given" if args.threads is not None else "a worker's count, the default"
        print(f"BLAS: {'; '.join(info)} (threads: {origin})")
        print("\n".join(lines))
        return
    warnings.filterwarnings("ignore")
    import sklearn.neural_network  # noqa: F401  (load every BLAS / OpenMP library before limiting)
    import torch  # noqa: F401
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=args.threads) if args.threads else None
    started = time.perf_counter()
    for line in environment(args.threads):
        print(line, flush=True)
    print(f"throughput clock: {'process CPU time' if args.clock == 'cpu' else 'wall clock'}")
    summary: list[str] = []
    selected = [c for c in CASES if args.cases is None or c.name in args.cases.split(",")]
    for case in selected:
        rows = min(case.rows, 2048) if args.quick else case.rows
        table, checks = run_case(case, rows, seconds, args.rounds)
        print("\n" + "\n".join(table), flush=True)
        summary += checks
    print()
    for line in inference(args.quick):
        print(line, flush=True)
    print("\ntargets (ratios of samples/s, same run, same threads):")
    print("\n".join(summary))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if limiter is not None:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
