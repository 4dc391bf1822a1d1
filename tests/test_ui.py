"""The Dagster UI as a newcomer uses it: `make ui` on the session's materialised bank (its own
DAGSTER_HOME), driven in Debian's Chromium through Playwright. The asset graph with its groups; an
asset page with description, metadata and checks; a month launched from the launchpad whose
blocking check fails, the check's page saying what failed and how to accept it, and the same month
launched again once the delivery is fixed, which succeeds. Screenshots go to SCREENSHOTS."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import dagster as dg
import pyarrow.parquet as pq
import pytest

from tests.conftest import CHROMIUM, LANDING, REPO, SCREENSHOTS, SESSION_DIR
from tests.test_offline import attempts, guarded_env

pytestmark = pytest.mark.integration
GROUPS = {"raw", "staging", "intermediate", "marts", "evaluation", "monitoring", "published", "model"}
# The webserver, the daemon and the runs they launch run under the outbound guard (tests/test_offline.py).
OUTBOUND = SESSION_DIR / "ui-outbound.jsonl"
ASKED_OUTSIDE: list[str] = []  # what the pages asked of any host but the webserver


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
RUN = """{ runOrError(runId: "%s") { ... on Run { status jobName tags { key value } } } }"""


@pytest.fixture(scope="module")
def ui(pipeline_run):
    """`make ui` (webserver and daemon, as a user starts them) on the session's run history."""
    port = _free_port()
    # A user's shell: no activated venv, so dbt is not on PATH unless `make ui` puts it there.
    path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p)
    # The UI's output goes to a file: a pipe nobody drains fills at 64 KB, and then every process
    # writing to it (webserver, daemon, the run workers they launch) blocks mid-run.
    log = SESSION_DIR / "ui.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["make", "--no-print-directory", "ui", f"UI_PORT={port}"],
            cwd=REPO,
            env={**guarded_env(OUTBOUND), "PATH": path},
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        entries = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(3)
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                entries = _graphql(port, LOCATION)["workspaceOrError"]["locationEntries"]
            except OSError:
                continue
            if entries and entries[0]["loadStatus"] == "LOADED":
                break
        assert entries, "the UI did not answer within 180 s"
        yield {"port": port, "entries": entries, "months": pipeline_run["months"]}
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def browser(ui):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        page.on("request", lambda r: _local(r.url) or ASKED_OUTSIDE.append(r.url))
        yield page
        chromium.close()


def _local(url: str) -> bool:
    return url.startswith(("http://127.0.0.1:", "data:", "blob:", "about:"))


def _open(page, ui, path: str) -> None:
    page.goto(f"http://127.0.0.1:{ui['port']}{path}", wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")  # the first visit's "join the community" dialog
    if skip.count():
        skip.click()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"ui-{name}.png"), full_page=True)


def test_make_ui_serves_the_code_location(ui):
    [entry] = ui["entries"]
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    [repo] = _graphql(ui["port"], ASSETS)["repositoriesOrError"]["nodes"]
    assert {j["name"] for j in repo["jobs"]} >= {"monthly_pipeline", "train_tiering_model", "rescore_tiers"}
    assert {g["groupName"] for g in repo["assetGroups"]} == GROUPS
    assert sorted(s["name"] for s in repo["sensors"]) == ["new_month_sensor", "rescore_on_new_champion"]
    # The Great Expectations suite shows as a blocking check on the asset it checks.
    node = _graphql(ui["port"], CHECKS)["assetNodeOrError"]
    assert {"name": "great_expectations", "blocking": True} in node["assetChecksOrError"]["checks"]


def test_the_asset_graph_shows_the_pipeline_by_group(ui, browser):
    _open(browser, ui, "/asset-groups")
    browser.wait_for_timeout(2000)
    text = browser.inner_text("body")
    assert "Global asset lineage" in text
    for group in GROUPS:
        assert browser.get_by_text(group, exact=True).count() > 0, group
    _shot(browser, "asset-graph")


def test_an_asset_page_explains_the_asset(ui, browser):
    _open(browser, ui, "/assets/marts/customer_tiers")
    browser.get_by_text("Metadata", exact=True).first.wait_for()
    text = browser.inner_text("body")
    assert "The published tiers: value tier, 0-100 score" in text  # its description
    for key in ("rows_in", "rows_out", "seconds", "latest_month_tiers", "model_version", "tier_basis"):
        assert key in text, key
    for definition in ("marts", "DuckDB", "Python", "monthly_pipeline", "rescore_tiers", "valuetier-data"):
        assert definition in text, definition  # group, kinds, jobs, owner
    _shot(browser, "asset-customer-tiers")
    _open(browser, ui, "/assets/marts/customer_tiers?view=checks")
    browser.get_by_text("This is a blocking asset check.").wait_for()
    assert "Great Expectations suite customer_tiers.json" in browser.inner_text("body")
    _shot(browser, "asset-customer-tiers-checks")
    _open(browser, ui, "/assets/model/tiering_model")
    browser.get_by_text("holdout_metrics").first.wait_for()
    text = browser.inner_text("body")
    assert "artifact_sha256" in text and "decision" in text and "model_card" in text
    _shot(browser, "asset-tiering-model")


def _launch(page, ui, job: str, month: str) -> str:
    """The launchpad as a person uses it: pick the month, launch; the run's id from its page."""
    _open(page, ui, f"/locations/valuetier/jobs/{job}/playground")
    box = page.get_by_placeholder("Partition")
    box.click()
    box.fill(month)
    page.get_by_text(month, exact=True).last.wait_for()
    page.keyboard.press("Enter")
    page.get_by_text(f"partition: {month}").wait_for()
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url("**/runs/*", timeout=60_000)
    run_id = page.url.rstrip("/").split("/runs/")[1].split("?")[0]
    # Off the live run page while the run works: its renderer would take half a core from the run.
    page.goto("about:blank")
    return run_id


def _finished(ui, run_id: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _graphql(ui["port"], RUN % run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(3)
    # What the run was doing, and who holds the warehouse's pool slot, for whoever reads the failure.
    with dg.DagsterInstance.get() as instance:
        last = [r.message for r in instance.all_logs(run_id)[-5:]]
        pool = instance.event_log_storage.get_concurrency_info("duckdb")
        holders = [(s.run_id, s.step_key) for s in pool.claimed_slots]
        statuses = {r: instance.get_run_by_id(r).status for r, _ in holders if instance.get_run_by_id(r)}
    raise AssertionError(f"run {run_id} still {status} after {timeout:.0f}s; last: {last}; slot: {holders} {statuses}")


def test_a_month_launched_from_the_ui_stops_at_its_check_and_then_succeeds(ui, browser, tmp_path):
    month = ui["months"][-1]
    delivered = LANDING / "transactions" / f"{month}.parquet"
    original = tmp_path / "original.parquet"
    shutil.copy(delivered, original)
    table = pq.read_table(original)
    pq.write_table(table.slice(0, table.num_rows // 5), delivered)  # a partial extract: a fifth of the rows
    try:
        failed = _launch(browser, ui, "monthly_pipeline", month)
        assert _finished(ui, failed) == "FAILURE"
        _open(browser, ui, f"/runs/{failed}")
        browser.get_by_text("Failure").first.wait_for()
        _shot(browser, "run-stopped-by-check")
        _open(browser, ui, "/assets/raw/transactions?view=checks")
        browser.get_by_text("Failed", exact=True).first.wait_for()
        text = browser.inner_text("body")
        # What failed, and how to accept it: the check's description as a person reads it.
        assert "volume" in text
        assert f"valuetier quality accept --month {month} --check raw_transactions.volume" in text
        _shot(browser, "failed-check")
    finally:
        shutil.copy(original, delivered)
    again = _launch(browser, ui, "monthly_pipeline", month)
    assert _finished(ui, again) == "SUCCESS"
    _open(browser, ui, f"/runs/{again}")
    browser.get_by_text("Success").first.wait_for()
    _shot(browser, "run-succeeded")
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(again)
        assert run.tags["dagster/partition"] == month


def test_the_ui_and_its_runs_call_nothing_outside(ui, browser):
    """Last of the module: the webserver, the daemon, the runs launched above and the pages shown
    attempted no connection to another host."""
    assert attempts(OUTBOUND) == []
    assert ASKED_OUTSIDE == []
