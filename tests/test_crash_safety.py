"""A run killed (SIGKILL, the whole process group: Python, dbt and all) in the middle of ingestion, of
the dbt build, of training, of scoring and of publishing: the next run completes, removes what the
killed one left, and the warehouse, the model registry and the published marts (the DuckDB file and
the Parquet folder) are exactly what an uninterrupted run gives.

Each kill lands at an event of the run, not after a guessed delay: the run is held at the stage's
named pause point (valuetier.core.leftovers: the stage's first month written, dbt's first model built, a
model version or a snapshot staged, before its rename), and the test checks the stage had started
and not finished."""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO
from valuetier.core.leftovers import pause_marker
from valuetier.demo.generator import GeneratorConfig, generate

pytestmark = pytest.mark.integration
SCHEMAS = ("raw", "raw_quarantine", "staging", "intermediate", "marts", "evaluation", "monitoring")
# (the stage's pause point, the step it is in)
KILL_POINTS = [
    ("ingestion", "raw__transactions"),
    ("dbt build", "valuetier_dbt_models"),
    ("training", "model__tiering_model"),
    ("scoring", "marts__customer_tiers"),
    ("publishing", "published__bi_marts"),
]


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    generate(GeneratorConfig(customers=600, months=12, seed=31, out=root / "landing"), progress=lambda _: None)
    return root / "landing"


def _environment(root: Path, landing: Path) -> dict[str, str]:
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VALUETIER_LANDING": str(landing),
        "VALUETIER_WAREHOUSE": str(root / "warehouse" / "valuetier.duckdb"),
        "DBT_TARGET_PATH": str(root / "dbt_target"),
    }


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)


def _run(env: dict, at=None, pause_at: str | None = None, timeout: float = 900) -> tuple[int, str]:
    """`python -m orchestration.run` to its end. Given `pause_at`, the run is held at that pause point
    and killed there; given `at` (step, seconds, action), the action is done to the process `seconds`
    after that step starts (the run's JSON-lines log says when)."""
    if pause_at:
        env = {**env, "VALUETIER_PAUSE_AT": pause_at}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    first = ""
    try:
        if at is not None or pause_at:
            first = process.stdout.readline()
            assert first.startswith("full log: "), first
            records = Path(first.split(": ", 1)[1].strip()).with_suffix(".jsonl")
            marker = pause_marker(Path(env["VALUETIER_WAREHOUSE"]).parent, pause_at) if pause_at else None
            step = at[0] if at else None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert process.poll() is None, f"the run ended before {pause_at or step}"
                if marker is not None and marker.exists():
                    break
                if step and step in _steps(records, "STEP_START"):
                    break
                time.sleep(0.05)
            if at is not None:
                time.sleep(at[1])
                assert process.poll() is None, f"the run ended within {at[1]}s of {step} starting"
                at[2](process)
            else:
                _kill(process)
        output, _ = process.communicate(timeout=timeout)
    except BaseException:  # a run that hangs (a pool slot never freed) fails the test, and is stopped
        _kill(process)
        raise
    return process.returncode, first + output


def _steps(records: Path, event: str) -> set[str]:
    """The steps of a run's JSON-lines log that have `event` (STEP_START, STEP_SUCCESS...)."""
    lines = records.read_text(encoding="utf-8").splitlines() if records.exists() else []
    return {r["step"] for r in map(json.loads, lines) if r["event"] == event}


def _leftovers(root: Path) -> list[str]:
    """What a killed run stages with its process id: a model version, a published file or link."""
    warehouse = root / "warehouse"
    staged = [*(warehouse / "models").glob(".v*.*"), *(warehouse / "published").glob(".*.tmp")]
    return sorted(str(p.relative_to(root)) for p in staged)


def _tables(path: Path, schemas=SCHEMAS) -> dict[str, str]:
    """Every table and view of the schemas, as a hash of its rows in order (row count included)."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            f"WHERE table_schema IN ({', '.join(repr(s) for s in schemas)}) ORDER BY 1"
        ).fetchall()
        return {
            name: hashlib.sha256(
                repr(con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()).encode()
            ).hexdigest()
            for (name,) in names
        }


def _registry(models: Path) -> dict:
    """The registry's versions and cards, and which is champion (none where the gate kept the baseline)."""
    pointer = models / "champion.json"
    return {
        "champion": json.loads(pointer.read_text()) if pointer.exists() else None,
        "cards": {p.parent.name: json.loads(p.read_text()) for p in sorted(models.glob("v*/card.json"))},
    }


def _parquet(current: Path) -> dict[str, str]:
    """The published Parquet folder as BI reads it: every file under `current`, as a hash of its rows."""
    with duckdb.connect() as con:
        return {
            str(path.relative_to(current)): hashlib.sha256(
                repr(con.execute(f"SELECT * FROM read_parquet('{path}') ORDER BY ALL").fetchall()).encode()
            ).hexdigest()
            for path in sorted(current.rglob("*.parquet"))
        }


def _state(root: Path) -> dict:
    warehouse = root / "warehouse"
    return {
        "warehouse": _tables(warehouse / "valuetier.duckdb"),
        "registry": _registry(warehouse / "models"),
        "published": _tables(
            warehouse / "published" / "valuetier.duckdb", schemas=("marts", "evaluation", "monitoring")
        ),
        "published_parquet": _parquet(warehouse / "published" / "current"),
        "published_versions": sorted(p.name for p in (warehouse / "published" / "versions").iterdir()),
    }


@pytest.fixture(scope="module")
def uninterrupted(landing, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    code, output = _run(_environment(root, landing))
    assert code == 0, output[-3000:]
    return _state(root)


@pytest.mark.parametrize(("stage", "step"), KILL_POINTS, ids=[k[0] for k in KILL_POINTS])
def test_a_run_killed_mid_stage_is_completed_by_the_next(stage, step, landing, uninterrupted, tmp_path):
    env = _environment(tmp_path, landing)
    code, output = _run(env, pause_at=stage)
    assert code == -signal.SIGKILL, output[-2000:]
    # The kill landed inside the stage: its step started and did not finish.
    [records] = (tmp_path / "warehouse" / "logs").glob("run-*.jsonl")
    assert step in _steps(records, "STEP_START") and step not in _steps(records, "STEP_SUCCESS"), stage
    left = _leftovers(tmp_path)
    if stage == "training":  # a version staged, never renamed
        assert [p for p in left if p.startswith("warehouse/models/.v0001.")], left
    if stage == "publishing":  # a snapshot's DuckDB file staged, never swapped in
        assert [p for p in left if p.startswith("warehouse/published/.valuetier.duckdb.")], left
    code, output = _run(env)
    assert code == 0, f"the run after a kill in {stage} failed:\n{output[-3000:]}"
    assert _leftovers(tmp_path) == [], stage  # removed by the run that completed the work
    after = _state(tmp_path)
    assert after["registry"] == uninterrupted["registry"], stage
    differing = {t for t in uninterrupted["warehouse"] if after["warehouse"].get(t) != uninterrupted["warehouse"][t]}
    assert after["warehouse"].keys() == uninterrupted["warehouse"].keys() and not differing, (stage, differing)
    for published in ("published", "published_parquet", "published_versions"):
        assert after[published] == uninterrupted[published], (stage, published)


@contextmanager
def _mounted(folder: Path, options: str):
    """A small filesystem of its own at `folder` (tmpfs, or a read-only bind mount): the test's
    stand-in for a disk that fills up or a folder the run may not write. Needs root, as CI has."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root (CI and make test run as root here)")
    kind = ["--bind", str(folder)] if options == "bind" else ["-t", "tmpfs", "-o", options, "tmpfs"]
    subprocess.run(["mount", *kind, str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_disk_that_fills_up_stops_the_run_clearly_and_the_next_run_loses_nothing(landing, uninterrupted, tmp_path):
    env = _environment(tmp_path, landing)
    ballast = tmp_path / "warehouse" / "ballast"

    def fill_the_disk(_process):  # another process takes every free byte while dbt builds
        with ballast.open("wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()

    with _mounted(tmp_path / "warehouse", "size=100m"):
        code, output = _run(env, at=("valuetier_dbt_models", 0.5, fill_the_disk))
        assert code == 1, output[-3000:]
        assert "No space left on device" in output, output[-3000:]
        assert "Traceback" not in output  # messages, not a crash
        # The full disk is refused before the next run starts (full: no byte can be written).
        code, output = _run(env)
        assert code == 2 and "refusing to run: cannot write in the warehouse folder" in output, output[-3000:]
        assert "No space left on device" in output
        ballast.write_bytes(b"")
        with ballast.open("ab") as f:  # nearly full: a few MB left, below what a run needs
            f.write(b"\0" * max(shutil.disk_usage(ballast.parent).free - (8 << 20), 0))
        code, output = _run(env)
        assert code == 2 and "MB free; a run needs at least 64 MB" in output, output[-3000:]
        ballast.unlink()  # space freed: the next run completes as if nothing had happened
        code, output = _run(env)
        assert code == 0, output[-3000:]
        after = _state(tmp_path)
    assert after == uninterrupted


def test_a_read_only_warehouse_folder_is_refused_before_anything_is_touched(landing, uninterrupted, tmp_path):
    env = _environment(tmp_path, landing)
    code, output = _run(env)
    assert code == 0, output[-3000:]
    before = _state(tmp_path)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "warehouse").rglob("*") if p.is_file()}
    with _mounted(tmp_path / "warehouse", "bind"):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(tmp_path / "warehouse")], check=True)
        code, output = _run(env)
    assert code == 2, output[-3000:]
    assert f"refusing to run: cannot write in the warehouse folder {tmp_path / 'warehouse'}: Read-only file system" in (
        output
    )
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "warehouse").rglob("*") if p.is_file()} == files
    assert _state(tmp_path) == before == uninterrupted
