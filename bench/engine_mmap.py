"""Engine training from a memory-mapped x: worker-like peak RSS and per-epoch seconds.

Each variant runs in its own process (so its peak RSS, /proc VmHWM, is its own), with
x from ``np.load(path, mmap_mode="r")`` of a float32 ``.npy`` file: 784-256-128-10, batch
128, 10% validation. ``--code DIR`` (repeatable) names app/ trees to compare (e.g. an
older checkout exported with ``git archive``); variants are interleaved and repeated,
medians reported with the load average. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are
removed for the children (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
x = np.load(sys.argv[1], mmap_mode="r")
y = np.load(sys.argv[2])
epochs = int(sys.argv[3])
from app.engine.network import Network
from app.engine.training import Trainer, TrainingOptions
net = Network(784, [{"units": 256, "activation": "relu"}, {"units": 128, "activation": "relu"},
                    {"units": 10, "activation": "softmax"}], seed=0)
base = status("VmRSS")
started = time.perf_counter()
trainer = Trainer(net, x, y, TrainingOptions(epochs=epochs, batch_size=128, validation_split=0.1))
prepared = time.perf_counter() - started
result = trainer.run()
total = time.perf_counter() - started
print(json.dumps({"hwm_mib": status("VmHWM"), "base_mib": base, "end_anon_mib": status("RssAnon"),
                  "end_file_mib": status("RssFile"), "prepare_s": prepared,
                  "total_s": total, "epochs": [e["seconds"] for e in result.history],
                  "val_loss": result.history[-1].get("val_loss")}))
"""


def run_child(command: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run one variant; its JSON report plus ``peak_mib``: the larger of its own VmHWM and
    its VmRSS sampled every 5 ms from here (VmHWM alone can miss a short peak)."""
    child = subprocess.Popen(
        command, env=env, cwd=env["PYTHONPATH"], stdout=subprocess.PIPE, text=True
    )
    sampled = 0.0
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        sampled = max(sampled, int(line.split()[1]) / 1024)
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.005)
    out, _ = child.communicate()
    if child.returncode:
        raise SystemExit(f"variant failed: {command}")
    result: dict[str, object] = json.loads(out)
    result["sampled_mib"] = sampled
    result["peak_mib"] = max(sampled, float(result["hwm_mib"]))  # type: ignore[arg-type]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="OPENBLAS_NUM_THREADS (0: unset)")
    parser.add_argument("--code", action="append", default=[], help="PYTHONPATH of a variant")
    args = parser.parse_args()
    codes = args.code or [str(Path(__file__).resolve().parent.parent)]
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    if args.threads:
        env["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (args.rows, 784)).astype(np.float32)
        np.save(f"{tmp}/x.npy", x)
        np.save(f"{tmp}/y.npy", rng.integers(0, 10, args.rows))
        mib = x.nbytes / 2**20
        del x
        print(
            f"x: {args.rows} x 784 float32 = {mib:.1f} MiB; epochs {args.epochs}; "
            f"OPENBLAS_NUM_THREADS {env.get('OPENBLAS_NUM_THREADS', 'unset')}"
        )
        runs: dict[str, list[dict[str, object]]] = {code: [] for code in codes}
        for _ in range(args.repeats):
            for code in codes:
                result = run_child(
                    [sys.executable, "-c", CHILD, f"{tmp}/x.npy", f"{tmp}/y.npy", str(args.epochs)],
                    {**env, "PYTHONPATH": code},
                )
                runs[code].append(result)
                print(code, json.dumps(result), "load", os.getloadavg(), flush=True)
        for code, results in runs.items():
            hwm = statistics.median(float(r["peak_mib"]) for r in results)  # type: ignore[arg-type]
            epochs = [
                statistics.median(float(r["epochs"][i]) for r in results)  # type: ignore[index]
                for i in range(args.epochs)
            ]
            print(
                f"{code}: peak RSS median {hwm:.0f} MiB (x {mib:.0f} MiB, excess {hwm - mib:.0f});"
                f" epoch seconds medians {[round(e, 3) for e in epochs]}"
            )
        print("load average", os.getloadavg(), time.strftime("%H:%M:%S"))


if __name__ == "__main__":
    main()
