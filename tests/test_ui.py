"""`make ui` starts the Dagster UI and the code location loads, with the run history of the tests."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import REPO, SESSION_DIR

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
ASSETS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name jobs { name }
  assetGroups { groupName } sensors { name } } } } }"""
CHECKS = """{ assetNodeOrError(assetKey: {path: ["raw", "transactions"]}) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }"""


def test_make_ui_serves_the_code_location(pipeline_run):
    port = _free_port()
    # A user's shell: no activated venv, so dbt is not on PATH unless `make ui` puts it there.
    path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p)
    env = {**os.environ, "PATH": path, "DAGSTER_HOME": str(SESSION_DIR / "ui_home")}
    server = subprocess.Popen(
        ["make", "--no-print-directory", "ui", f"UI_PORT={port}"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        entries = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(3)
            assert server.poll() is None, server.stdout.read().decode()[-3000:]
            try:
                entries = _graphql(port, LOCATION)["workspaceOrError"]["locationEntries"]
            except OSError:
                continue
            if entries and entries[0]["loadStatus"] == "LOADED":
                break
        assert entries, "the UI did not answer within 180 s"
        [entry] = entries
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        [repo] = _graphql(port, ASSETS)["repositoriesOrError"]["nodes"]
        assert {j["name"] for j in repo["jobs"]} >= {"monthly_pipeline", "train_tiering_model", "rescore_tiers"}
        groups = {g["groupName"] for g in repo["assetGroups"]}
        assert groups == {"raw", "staging", "intermediate", "marts", "evaluation", "monitoring", "published", "model"}
        assert sorted(s["name"] for s in repo["sensors"]) == ["new_month_sensor", "rescore_on_new_champion"]
        # The Great Expectations suite shows as a blocking check on the asset it checks.
        node = _graphql(port, CHECKS)["assetNodeOrError"]
        assert {"name": "great_expectations", "blocking": True} in node["assetChecksOrError"]["checks"]
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
