"""The benchmark's Python heap tracing (bench/python_heap/): a process's arrays are seen, the peak
between two samples is not missed, and each step gets the peak of its own window."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from measure import python_heap  # noqa: E402  (bench/measure.py)

# A "stage" of two steps: a 400 MB array held for a moment, then a 40 MB one; its windows are
# printed so the test can hand them to python_heap like Dagster's event log does.
STAGE = """
import json, time
import numpy as np
windows = []
start = time.time()
big = np.ones(50_000_000)
del big  # freed at once: only the traced peak can have seen it
windows.append(("big", start, time.time()))
time.sleep(0.5)  # longer than a late sample could take: the big peak stays in its own window
start = time.time()
small = np.ones(5_000_000)
time.sleep(0.3)
windows.append(("small", start, time.time()))
print(json.dumps(windows))
"""


def test_each_step_gets_its_own_peak_heap(tmp_path):
    script = tmp_path / "stages.py"  # named like the benchmark's stage runner
    script.write_text(STAGE)
    traced = tmp_path / "heap"
    env = os.environ | {"PYTHONPATH": str(BENCH / "python_heap"), "VALUETIER_BENCH_PYTHON_HEAP": str(traced)}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True)
    windows = [tuple(w) for w in json.loads(out.stdout)]
    time.sleep(0.1)
    heap = python_heap(traced, windows)
    mib = 2**20
    assert 381 <= heap["by_step"]["big"]["heap_mib"] < 381 + 100  # 50 M doubles, the imports besides
    assert 38 <= heap["by_step"]["small"]["heap_mib"] < 38 + 100
    assert heap["by_step"]["small"]["rss_mib"] >= 38
    assert list(heap["by_process"].values()) == [heap["by_step"]["big"]["heap_mib"]]
    assert 400_000_000 / mib < max(heap["by_process"].values())


def test_without_the_variable_nothing_is_traced(tmp_path):
    env = os.environ | {"PYTHONPATH": str(BENCH / "python_heap")}
    env.pop("VALUETIER_BENCH_PYTHON_HEAP", None)
    code = "import sys, tracemalloc; sys.exit(tracemalloc.is_tracing())"
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
