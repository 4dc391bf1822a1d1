"""A run killed (SIGKILL, the whole process group: Python, dbt and all) in the middle of ingestion, of
the dbt build, of training, of scoring and of publishing: the next run completes, and the warehouse,
the model registry and the published marts are exactly what an uninterrupted run gives."""

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
from valuetier.generator import GeneratorConfig, generate

pytestmark = pytest.mark.integration
SCHEMAS = ("raw", "raw_quarantine", "staging", "intermediate", "marts", "evaluation", "monitoring")
# (stage, the step whose start is watched for in the run's JSON-lines log, seconds into it)
KILL_POINTS = [
    ("ingestion", "raw__transactions", 0.2),
    ("dbt build", "valuetier_dbt_models", 4.0),
    ("training", "model__tiering_model", 2.0),
    ("scoring", "marts__customer_tiers", 0.3),
    ("publishing", "published__bi_marts", 0.1),
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


def _run(env: dict, at: tuple[str, float, object] | None = None, timeout: float = 900) -> tuple[int, str]:
    """`python -m orchestration.run` to its end; given (step, seconds, action), the action is done to
    the process `seconds` after that step starts (the run's JSON-lines log says when)."""
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
        if at is not None:
            step, seconds, action = at
            first = process.stdout.readline()
            assert first.startswith("full log: "), first
            records = Path(first.split(": ", 1)[1].strip()).with_suffix(".jsonl")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert process.poll() is None, f"the run ended before {step} started"
                lines = records.read_text(encoding="utf-8").splitlines() if records.exists() else []
                if any(
                    json.loads(line)["event"] == "STEP_START" and json.loads(line)["step"] == step for line in lines
                ):
                    break
                time.sleep(0.05)
            time.sleep(seconds)
            assert process.poll() is None, f"the run ended within {seconds}s of {step} starting"
            action(process)
        output, _ = process.communicate(timeout=timeout)
    except BaseException:  # a run that hangs (a pool slot never freed) fails the test, and is stopped
        _kill(process)
        raise
    return process.returncode, first + output


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


def _state(root: Path) -> dict:
    warehouse = root / "warehouse"
    return {
        "warehouse": _tables(warehouse / "valuetier.duckdb"),
        "registry": _registry(warehouse / "models"),
        "published": _tables(
            warehouse / "published" / "valuetier.duckdb", schemas=("marts", "evaluation", "monitoring")
        ),
    }


@pytest.fixture(scope="module")
def uninterrupted(landing, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    code, output = _run(_environment(root, landing))
    assert code == 0, output[-3000:]
    return _state(root)


@pytest.mark.parametrize(("stage", "step", "seconds"), KILL_POINTS, ids=[k[0] for k in KILL_POINTS])
def test_a_run_killed_mid_stage_is_completed_by_the_next(stage, step, seconds, landing, uninterrupted, tmp_path):
    env = _environment(tmp_path, landing)
    code, output = _run(env, at=(step, seconds, _kill))
    assert code == -signal.SIGKILL, output[-2000:]
    code, output = _run(env)
    assert code == 0, f"the run after a kill in {stage} failed:\n{output[-3000:]}"
    after = _state(tmp_path)
    assert after["registry"] == uninterrupted["registry"], stage
    differing = {t for t in uninterrupted["warehouse"] if after["warehouse"].get(t) != uninterrupted["warehouse"][t]}
    assert after["warehouse"].keys() == uninterrupted["warehouse"].keys() and not differing, (stage, differing)
    assert after["published"] == uninterrupted["published"], stage


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
