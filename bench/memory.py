"""Peak RSS of a real ``backprop worker --burst`` training 784-256-128-10 on 60,000 x 784.

Starts the API alone (uvicorn, temporary SQLite, limits raised for a 188 MB upload),
uploads 60,000 x 784 float32 rows as npz, submits a job with the API's defaults (Adam,
validation split 0.2, standardisation on) but few epochs, then runs ``backprop worker
--burst`` as a child and measures its peak resident set size two ways: polling
/proc/<pid>/status (VmRSS timeline, VmHWM) and the kernel's ru_maxrss from wait4() for
that one child (this process never holds the data, so that figure is the worker's own).
The same worker on an empty queue gives the baseline (imports alone).

Target: peak <= 2 x the training data + 200 MiB (no float64 copies, no per-epoch copies).

    .venv/bin/python bench/memory.py [--quick] [--rows 60000] [--epochs 2]
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

MIB = 1024 * 1024
SIZES = [784, 256, 128, 10]


def read_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of ``pid`` in bytes ({} once it has exited)."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return values


def run_worker(env: dict[str, str], interval: float = 0.02) -> dict[str, Any]:
    """Run ``backprop worker --burst`` to completion; its peak RSS and RSS timeline."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(_service.VENV_BIN / "backprop"), "worker", "--burst"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    timeline: list[tuple[float, int]] = []
    hwm = 0
    status = 0
    usage = None
    while True:
        # wait4 on this one child: its own ru_maxrss, not the maximum over all children
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        values = read_status(proc.pid)
        if values.get("VmRSS"):
            timeline.append((time.perf_counter() - started, values["VmRSS"]))
            hwm = max(hwm, values.get("VmHWM", 0))
        time.sleep(interval)
    proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"worker exited {proc.returncode}:\n{stderr[-3000:]}")
    assert usage is not None
    return {
        "seconds": time.perf_counter() - started,
        "ru_maxrss": usage.ru_maxrss * 1024,  # KiB on Linux
        "vmhwm": hwm,
        "timeline": timeline,
    }


def describe_timeline(timeline: list[tuple[float, int]], points: int = 12) -> str:
    if not timeline:
        return "(no samples)"
    step = max(1, len(timeline) // points)
    picked = timeline[::step]
    if picked[-1] != timeline[-1]:
        picked.append(timeline[-1])
    return ", ".join(f"{t:.1f}s {rss / MIB:.0f}" for t, rss in picked)


def make_npz(rows: int) -> bytes:
    """x: (rows, 784) float32 N(0, 1); y: (rows,) int64 labels of a random linear rule."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, SIZES[0]), dtype=np.float32)
    y = (x @ rng.standard_normal((SIZES[0], SIZES[-1]), dtype=np.float32)).argmax(axis=1)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y.astype(np.int64))
    return buffer.getvalue()


def upload_in_child(service: _service.Service, rows: int) -> dict[str, Any]:
    """Make and upload the data in another process.

    A child's ru_maxrss starts from its parent's peak (fork/vfork share or copy the
    parent's pages, and exec keeps the old high-water mark), so this process must never
    hold the data itself, or the worker's ru_maxrss would be ours.
    """
    out = subprocess.run(
        [sys.executable, __file__, "--_upload", service.base_url, "--rows", str(rows)],
        env={**os.environ, "BENCH_KEY": service.key},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"upload failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", default="")
    parser.add_argument("--_upload", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._upload:  # the uploading child
        import httpx

        headers = {"Authorization": f"Bearer {os.environ['BENCH_KEY']}"}
        with httpx.Client(base_url=args._upload, headers=headers, timeout=600.0) as client:
            dataset = _service.upload_npz(client, name="memory-bench", npz=make_npz(args.rows))
        print(json.dumps(dataset))
        return
    if args.quick:
        args.epochs = 1

    conditions = _service.Conditions.collect()
    print(conditions.describe())
    data_bytes = args.rows * SIZES[0] * np.dtype(np.float32).itemsize
    npz_bytes = data_bytes + args.rows * 8 + 4096  # x, y (int64), headers

    extra = {
        "BACKPROP_MAX_BODY_BYTES": str(npz_bytes + 16 * MIB),
        "BACKPROP_MAX_DATASET_CELLS": str(args.rows * SIZES[0]),
    }
    with (
        _service.running_service(workers=0, extra_env=extra) as service,
        service.client(timeout=600.0) as client,
    ):
        dataset = upload_in_child(service, args.rows)
        worker_env = dict(service.env)
        baseline = run_worker(worker_env)  # empty queue: imports + one poll
        network = _service.create_network(
            client, name="memory-bench", sizes=SIZES, hidden="relu", output="softmax"
        )
        body = {
            "network_id": network["id"],
            "dataset_id": dataset["id"],
            "epochs": args.epochs,
            "batch_size": args.batch_size,
        }
        job = _service.submit_job(client, body)
        load_before = _service.load_average()
        training = run_worker(worker_env)
        job = _service.check(client.get(f"/v1/jobs/{job['id']}"), 200)
        if job["status"] != "succeeded":
            raise RuntimeError(f"job ended {job['status']}: {job.get('error')}")

    peak = max(training["ru_maxrss"], training["vmhwm"])
    target = 2 * data_bytes + 200 * MIB
    print(
        f"worker: {args.rows:,} x {SIZES[0]} float32 = {data_bytes / MIB:.1f} MiB of data, "
        f"job options {json.dumps(job.get('options', {}))}, "
        f"{len(job['history'])} epoch(s), worker ran {training['seconds']:.1f} s"
    )
    print(f"RSS timeline (s MiB): {describe_timeline(training['timeline'])}")
    print()
    _service.print_table(
        [
            "what",
            "peak RSS (MiB)",
            "ru_maxrss / VmHWM (MiB)",
            "data (MiB)",
            "peak / data",
            "target (2 x data + 200 MiB)",
            "load avg",
        ],
        [
            [
                "idle worker (empty queue)",
                f"{max(baseline['ru_maxrss'], baseline['vmhwm']) / MIB:.0f}",
                f"{baseline['ru_maxrss'] / MIB:.0f} / {baseline['vmhwm'] / MIB:.0f}",
                "-",
                "-",
                "-",
                load_before,
            ],
            [
                f"worker training {'-'.join(map(str, SIZES))}",
                f"{peak / MIB:.0f}",
                f"{training['ru_maxrss'] / MIB:.0f} / {training['vmhwm'] / MIB:.0f}",
                f"{data_bytes / MIB:.1f}",
                f"{peak / data_bytes:.2f}",
                f"{target / MIB:.0f} MiB: {'met' if peak <= target else 'missed'}"
                f" ({(peak - target) / MIB:+.0f} MiB)",
                _service.load_average(),
            ],
        ],
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "conditions": conditions.__dict__,
                    "data_bytes": data_bytes,
                    "baseline": baseline,
                    "training": training,
                    "job": {k: job.get(k) for k in ("id", "options", "started_at", "finished_at")},
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
