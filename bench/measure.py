"""Measuring one step as a person would feel it: wall seconds, CPU seconds of the step's whole
process tree, and the tree's peak resident memory (DuckDB and dbt's processes included)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float
    peak_mib: float

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 1), "cpu_s": round(self.cpu_s, 1), "peak_mib": round(self.peak_mib)}


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended while we looked
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    return children


def tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants now."""
    children, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        todo.extend(children.get(pid, []))
    return total


def run_measured(command: list[str], env: dict[str, str], log: Path, interval: float = 0.25) -> Measured:
    """Run a command to its end (output to `log`), sampling its process tree's memory; a failing
    command raises with the log's tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak, done = 0, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_bytes(process.pid))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(command)} exited with {code}; the end of {log}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(wall, cpu, peak / 2**20)


def python_heap(folder: Path, steps: list[tuple[str, float, float]]) -> dict:
    """What bench/python_heap/sitecustomize.py recorded in `folder` for a stage: each step's peak
    Python heap and resident memory in the stage's own process (the in-process executor runs the
    steps there, one at a time, between their start and end), and each process's peak heap (dbt's
    processes have their own)."""
    processes = []
    for path in sorted(folder.glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        samples = [line for line in lines if "t" in line]
        if samples:
            processes.append((" ".join(Path(a).name for a in lines[0]["argv"][:3]), samples))
    stage = [samples for command, samples in processes if "stages.py" in command]
    by_step = {}
    for step, start, end in steps:
        # A sample holds the peak since the one before: the first after the end still covers the step.
        window = [s for s in (stage[0] if stage else []) if start <= s["t"] <= end + 0.2]
        if window:
            by_step[step] = {
                "heap_mib": round(max(s["heap"] for s in window) / 2**20),
                "rss_mib": round(max(s["rss"] for s in window) / 2**20),
            }
    by_process: dict[str, int] = {}
    for command, samples in processes:
        by_process[command] = max(by_process.get(command, 0), round(max(s["heap"] for s in samples) / 2**20))
    return {"by_step": by_step, "by_process": by_process}
