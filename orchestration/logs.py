"""The run's two loggers: a few progress lines for a person at the console, and every record as one
JSON line (run id, job, step, partition) in a log file for whoever investigates.

`python -m orchestration.run` (make demo, make run) turns both on and sends everything else (dbt's
own output, warnings of the libraries) to the same file; a run launched from the UI keeps Dagster's
default console logger and its event log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

WARNINGS_SHOWN_PER_STEP = 3
STARTED = time.monotonic()  # progress lines count seconds from the process's start, across its runs


def _meta(record: logging.LogRecord) -> dict:
    return getattr(record, LOG_RECORD_METADATA_ATTR, None) or {}


def partition_of(tags: dict) -> str | None:
    """The run's months as FIRST..LAST, or its single partition."""
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        first, last = tags[ASSET_PARTITION_RANGE_START_TAG], tags.get(ASSET_PARTITION_RANGE_END_TAG)
        return first if first == last else f"{first}..{last}"
    return tags.get("dagster/partition")


def _first_line(text: str, width: int = 150) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


class JsonLinesHandler(logging.Handler):
    """One JSON object per record: what a log shipper or `jq` reads."""

    def __init__(self, path: Path):
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        meta = _meta(record)
        event = meta.get("dagster_event")
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "run_id": meta.get("run_id"),
            "job": meta.get("job_name"),
            "partition": partition_of(meta.get("job_tags") or {}),
            "step": meta.get("step_key"),
            "event": event.event_type_value if event else None,
            "message": meta.get("orig_message", record.getMessage()),
        }
        with self.path.open("a", encoding="utf-8") as stream:  # a record is on disk once logged
            stream.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


class ProgressHandler(logging.Handler):
    """A line when a run starts and ends, one per finished step (with its seconds and the assets it
    materialised), every failed check and error, and the first few warnings of each step."""

    # Dagster builds a run's loggers more than once (for the run, and again where steps execute): what
    # is counted per run is kept by run id, for the run's last line.
    checks_by_run: dict[str, list[bool]] = {}

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.__stdout__
        self.materialised: dict[str, int] = {}
        self.checks: dict[str, list[bool]] = {}
        self.warnings: dict[str, int] = {}

    def _print(self, text: str) -> None:
        self.stream.write(f"[{time.monotonic() - STARTED:5.0f}s] {text}\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        meta = _meta(record)
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        if event is None:
            if record.levelno >= logging.ERROR:
                self._print(f"  error in {step}: {_first_line(meta.get('orig_message', record.getMessage()))}")
            elif record.levelno >= logging.WARNING:
                seen = self.warnings[step] = self.warnings.get(step, 0) + 1
                if seen <= WARNINGS_SHOWN_PER_STEP:
                    self._print(f"  warning in {step}: {_first_line(meta.get('orig_message', record.getMessage()))}")
            return
        kind = event.event_type
        if kind == DagsterEventType.RUN_START:
            months = partition_of(meta.get("job_tags") or {})
            self._print(f"{meta.get('job_name')} {months or ''} started (run {meta.get('run_id', '')[:8]})")
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            self.materialised[step] = self.materialised.get(step, 0) + 1
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            self.checks.setdefault(step, []).append(evaluation.passed)
            self.checks_by_run.setdefault(meta.get("run_id"), []).append(evaluation.passed)
            if not evaluation.passed:
                key = evaluation.asset_check_key
                self._print(
                    f"  check failed: {key.asset_key.to_user_string()} {key.name} ({evaluation.severity.value})"
                )
        elif kind == DagsterEventType.STEP_SUCCESS:
            seconds = event.event_specific_data.duration_ms / 1000
            checks = self.checks.get(step, [])
            done = [f"{self.materialised[step]} materialisations"] if self.materialised.get(step) else []
            done += [f"{len(checks)} checks, {checks.count(False)} failed"] if checks else []
            hidden = self.warnings.get(step, 0) - WARNINGS_SHOWN_PER_STEP
            done += [f"{hidden} more warnings in the log"] if hidden > 0 else []
            if not self.materialised.get(step) and all(checks):
                return  # a step of checks only, all passed: counted in the run's line
            self._print(f"  done {step.replace('__', '/')}: {', '.join(done + [f'{seconds:.1f}s'])}")
        elif kind == DagsterEventType.STEP_FAILURE:
            error = event.event_specific_data.error
            self._print(
                f"  FAILED {step}: {_first_line(error.message if error else meta.get('orig_message', ''), 400)}"
            )
        elif kind in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
            verdict = "succeeded" if kind == DagsterEventType.RUN_SUCCESS else "FAILED"
            checks = self.checks_by_run.pop(meta.get("run_id"), [])
            counted = f", {checks.count(True)} checks passed, {checks.count(False)} failed" if checks else ""
            self._print(f"{meta.get('job_name')} {verdict} (run {meta.get('run_id', '')[:8]}{counted})")


def _logger(name: str, handler: logging.Handler, level: str) -> logging.Logger:
    log = logging.Logger(name, level=logging.getLevelName(level.upper()))
    log.addHandler(handler)
    return log


@dg.logger(description="Progress lines for the console: run and step outcomes, failed checks, errors.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    # Dagster logs its events (step started, succeeded, ...) at DEBUG: the handler picks what it shows.
    return _logger("valuetier.progress", ProgressHandler(), "DEBUG")


@dg.logger(
    {"path": dg.Field(str, description="The JSON-lines file"), "log_level": dg.Field(str, default_value="DEBUG")},
    description="Every record as a JSON line with run id, job, partition and step.",
)
def json_file_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    return _logger("valuetier.json", JsonLinesHandler(Path(config["path"])), config["log_level"])
