"""The Python heap of every Python process a benchmark stage starts (bench.py --python-heap puts
this folder first on PYTHONPATH): Python imports it at start-up, before any of our code.

When VALUETIER_BENCH_PYTHON_HEAP names a folder, the process traces its heap with tracemalloc --
Python objects, and NumPy and so pandas arrays, which NumPy reports to it -- and adds what pyarrow's
memory pool holds. Every 0.1 s it appends a line to <folder>/<pid>.jsonl: the time, the traced
peak since the line before (exact: tracemalloc keeps the peak, and the line resets it) plus Arrow's
pool, and the process's resident memory. DuckDB's own memory (its buffer manager, the results it
hands over in Arrow form) and compiled code's buffers are not traced: the resident memory holds
them. Tracing slows Python's allocations, so a stage's seconds from such a run are not timings.
"""

import os

FOLDER = os.environ.get("VALUETIER_BENCH_PYTHON_HEAP")

if FOLDER:
    import atexit
    import json
    import sys
    import threading
    import time
    import tracemalloc

    tracemalloc.start()
    PAGE = os.sysconf("SC_PAGE_SIZE")
    OUT = os.path.join(FOLDER, f"{os.getpid()}.jsonl")
    os.makedirs(FOLDER, exist_ok=True)
    with open(OUT, "w") as first:
        first.write(json.dumps({"argv": sys.argv, "started": time.time()}) + "\n")

    def _sample() -> str:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        arrow = sys.modules.get("pyarrow")
        pool = arrow.total_allocated_bytes() if arrow is not None and hasattr(arrow, "total_allocated_bytes") else 0
        with open("/proc/self/statm") as statm:
            resident = int(statm.read().split()[1]) * PAGE
        return json.dumps({"t": round(time.time(), 2), "heap": peak + pool, "rss": resident}) + "\n"

    PENDING: list[str] = []
    LOCK = threading.Lock()

    def _flush() -> None:
        with LOCK, open(OUT, "a") as out:
            out.writelines(PENDING)
            PENDING.clear()

    def _sampler() -> None:
        while True:
            time.sleep(0.1)
            with LOCK:
                PENDING.append(_sample())
            if len(PENDING) >= 10:  # a write a second
                _flush()

    def _last() -> None:
        with LOCK:
            PENDING.append(_sample())
        _flush()

    threading.Thread(target=_sampler, name="valuetier-bench-heap", daemon=True).start()
    atexit.register(_last)
