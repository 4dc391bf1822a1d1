"""The monthly report as a person opens it: the pipeline's report of the latest month in headless
Chromium (Debian's, driven by Playwright) with every request other than the file itself refused,
every chart drawn, and the key figures in Dagster's metadata."""

import itertools
import re

import dagster as dg
import pytest

from tests.conftest import CHROMIUM, SCREENSHOTS

pytestmark = pytest.mark.integration
# tier sizes, value shares, retention, conversion, ROI, migration, flips, capture, disparity ratios, high tier by
# age band, model quality, delivery and population drift
CHARTS = 15
DRIFT_CHARTS = ("PSI against the recent months", "PSI against the training months")


@pytest.fixture(scope="module")
def report(pipeline_run):
    from orchestration.report import REPORT
    from valuetier.application.report import report_path
    from valuetier.core.settings import Settings

    latest = pipeline_run["months"][-1]
    # One materialization per month of the run: the latest month's names its report.
    [materialization] = [
        e.event_specific_data.materialization
        for e in pipeline_run["scored"].get_asset_materialization_events()
        if e.asset_key == REPORT and e.event_specific_data.materialization.partition == latest
    ]
    return {
        "month": latest,
        "path": report_path(Settings.from_env().reports_dir, latest),
        "metadata": materialization.metadata,
    }


def test_the_report_opens_offline_with_every_chart_drawn(report):
    from playwright.sync_api import sync_playwright

    url = report["path"].as_uri()
    requested = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def only_the_file(route):
            requested.append(route.request.url)
            (route.continue_() if route.request.url == url else route.abort())

        page.route("**/*", only_the_file)
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(url, wait_until="load")
        charts = page.locator("svg.chart")
        drawn = [
            (c.get_attribute("aria-label"), c.bounding_box(), c.locator(".mark").count())
            for c in charts.all()
        ]  # fmt: skip
        # Each drift chart's bar names, as drawn: every name whole, inside its chart, none on another.
        names = {
            title: [t.bounding_box() for t in page.locator(f'svg.chart[aria-label="{title}"] text.label').all()]
            for title in DRIFT_CHARTS
        }
        boxes = {title: page.locator(f'svg.chart[aria-label="{title}"]').bounding_box() for title in DRIFT_CHARTS}
        heading = page.locator("h1").inner_text()
        figures = page.locator(".figure").all_inner_texts()
        empty = page.locator(".empty").count()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
        browser.close()
    assert requested == [url] and failed == []  # nothing but the file: no network at view time
    assert report["month"] in heading
    assert empty == 0 and len(drawn) == CHARTS
    for label, box, marks in drawn:
        assert box and box["width"] > 300 and box["height"] > 150, label
        assert marks > 0, label
    labels = {label for label, _, _ in drawn}
    assert {"customers per tier", "share of realised value", "normalized Gini", *DRIFT_CHARTS} <= labels
    assert {"A->B->A flips", "high-tier value capture"} <= labels
    assert {"disparity ratio of pricing and service actions (upper bound)", "high-tier share by age band"} <= labels
    assert {"incremental conversions per contact", "Qini coefficient of the uplift ranking"} <= labels
    for title, drawn_names in names.items():
        assert len(drawn_names) >= 3, title
        for box in drawn_names:
            assert (
                boxes[title]["x"] <= box["x"] and box["x"] + box["width"] <= boxes[title]["x"] + boxes[title]["width"]
            )
        for above, below in itertools.pairwise(drawn_names):
            assert above["y"] + above["height"] <= below["y"] + 0.5, title
    assert any(f.startswith("customers") for f in figures)
    assert (SCREENSHOTS / "report.png").stat().st_size > 20_000


def test_the_report_is_linked_from_dagster_with_its_key_figures(report, pipeline_run):
    metadata = report["metadata"]
    assert metadata["report"].value == str(report["path"])
    assert metadata["open_report"].value == report["path"].as_uri()
    figures = metadata["key_figures"]
    assert isinstance(figures, dg.MarkdownMetadataValue) and "model Gini / RFM Gini" in figures.value
    html = report["path"].read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html)  # nothing to fetch
    # Point in time: the value shares of a month come from the latest month whose window had ended.
    from valuetier.core.months import add_months
    from valuetier.core.parameters import business_parameters

    shares_month = add_months(report["month"], -business_parameters().outcome_months)
    assert f"high-tier value share ({shares_month})" in figures.value
