"""Where a month's alerts go beyond the warehouse: a JSON-lines file, or a webhook when one is set.

A notifier takes a list of alert dictionaries (valuetier.application.monitoring.Alert.as_dict) and delivers
them, or raises NotifyError. The webhook posts one JSON document per month; if it fails, the
alerts are written to the file instead, so none is lost, and the error is reported.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class NotifyError(RuntimeError):
    """The alerts could not be delivered where they were meant to go; the message says where and why."""


class Notifier(Protocol):
    def notify(self, month: str, alerts: list[dict]) -> str:
        """Deliver the month's alerts; return where they went."""


@dataclass(frozen=True)
class FileNotifier:
    path: Path

    def notify(self, month: str, alerts: list[dict]) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for alert in alerts:
                f.write(json.dumps({"month": month, **alert}, sort_keys=True) + "\n")
        return str(self.path)


@dataclass(frozen=True)
class WebhookNotifier:
    url: str
    fallback: FileNotifier
    timeout_seconds: float = 10.0

    def notify(self, month: str, alerts: list[dict]) -> str:
        body = json.dumps({"source": "valuetier", "month": month, "alerts": alerts}, sort_keys=True).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                if not 200 <= response.status < 300:
                    raise NotifyError(f"webhook {self.url} answered HTTP {response.status}")
        except (urllib.error.URLError, OSError, NotifyError) as exc:
            kept = self.fallback.notify(month, alerts)
            raise NotifyError(f"webhook {self.url} failed ({exc}); the alerts were written to {kept}") from exc
        return self.url


def notifier(webhook_url: str | None, alerts_file: Path) -> Notifier:
    """The webhook when a URL is configured, else the file."""
    file = FileNotifier(alerts_file)
    return WebhookNotifier(webhook_url, file) if webhook_url else file
