"""A run killed (SIGKILL, the whole process group: Python, dbt and all) in the middle of ingestion, of
the dbt build, of training, of scoring and of publishing: the next run completes, and the warehouse,
the model registry and the published marts are exactly what an uninterrupted run gives."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
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


def _run(env: dict, kill_at: tuple[str, float] | None = None, timeout: float = 900) -> tuple[int, str]:
    """`python -m orchestration.run` to its end, or killed `seconds` after `step` starts."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if kill_at is None:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # a run that hangs (a pool slot never freed) fails the test
            os.killpg(process.pid, signal.SIGKILL)
            raise
        return process.returncode, output
    step, seconds = kill_at
    first = process.stdout.readline()
    assert first.startswith("full log: "), first
    records = Path(first.split(": ", 1)[1].strip()).with_suffix(".jsonl")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before {step} started"
        lines = records.read_text(encoding="utf-8").splitlines() if records.exists() else []
        if any(json.loads(line)["event"] == "STEP_START" and json.loads(line)["step"] == step for line in lines):
            break
        time.sleep(0.05)
    time.sleep(seconds)
    assert process.poll() is None, f"the run ended within {seconds}s of {step} starting"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return process.returncode, process.stdout.read()


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
    """The registry's versions and cards, and which is champion."""
    return {
        "champion": json.loads((models / "champion.json").read_text()),
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
    code, output = _run(env, kill_at=(step, seconds))
    assert code == -signal.SIGKILL, output[-2000:]
    code, output = _run(env)
    assert code == 0, f"the run after a kill in {stage} failed:\n{output[-3000:]}"
    after = _state(tmp_path)
    assert after["registry"] == uninterrupted["registry"], stage
    differing = {t for t in uninterrupted["warehouse"] if after["warehouse"].get(t) != uninterrupted["warehouse"][t]}
    assert after["warehouse"].keys() == uninterrupted["warehouse"].keys() and not differing, (stage, differing)
    assert after["published"] == uninterrupted["published"], stage
