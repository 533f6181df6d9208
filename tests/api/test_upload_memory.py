"""CSV uploads do not grow the API's memory thread by thread.

The API parses each upload in whichever thread of its pool is free. pyarrow's default
allocator (mimalloc) keeps the freed pages of every thread's heap, so each pool thread
that had parsed a CSV held a few MiB more: the soak's API RSS creep (BENCHMARKS.md
section 11). The parser uses the C library's allocator instead; this runs the real
parser in a fresh process, spread over 10 threads, and compares its resident memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THREADS = 10
PARSES = 60
# Measured here (10 threads, 60 parses of 2,000 rows): +48.9 MiB with mimalloc, +5.8 MiB
# with the system pool.
GROWTH_LIMIT_MIB = 20

CHILD = f"""
import io, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np
from app.services.uploads.csv_file import parse_csv
from app.services.uploads.limits import UploadLimits

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 4)).astype(np.float32)
text = "f0,f1,f2,f3,label\\n" + "".join(
    ",".join(f"{{v:.5f}}" for v in row) + f",{{int(row[0] > 0)}}\\n" for row in x
)
data = text.encode()
folder = Path(tempfile.mkdtemp())

def parse(i):
    path = folder / f"x{{i}}.npy"
    parse_csv(io.BytesIO(data), target=None, limits=UploadLimits(10**9), x_path=path)
    path.unlink()

parse(0)  # pyarrow's one-off set-up, in the main thread
start = rss_mib()
pools = [ThreadPoolExecutor(max_workers=1) for _ in range({THREADS})]
for i in range({PARSES}):
    pools[i % {THREADS}].submit(parse, i).result()  # one at a time, each thread in turn
print(rss_mib() - start)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_csv_parses_spread_over_threads_keep_memory_flat() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ARROW_DEFAULT_MEMORY_POOL", None)  # pyarrow's own default: mimalloc
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True
    )
    growth = float(done.stdout.strip())
    assert growth < GROWTH_LIMIT_MIB, f"RSS grew {growth:.1f} MiB over {PARSES} parses"
