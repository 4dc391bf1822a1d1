"""The one settings object. Every environment variable ValueTier reads is read here."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_PII_KEY = "valuetier-development-key-do-not-use-in-production"


def _path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path)


@dataclass(frozen=True)
class Settings:
    """Runtime settings; see the README's "Settings" table for each variable."""

    landing_dir: Path
    warehouse_path: Path
    pii_key: str
    dbt_project_dir: Path
    dbt_target: str
    mapping_file: Path | None = None  # VALUETIER_MAPPING; default: mapping.yml in the landing folder

    @property
    def mapping_path(self) -> Path | None:
        """The delivery mapping (valuetier.mapping) in force, or None for the contract's own names and codes."""
        if self.mapping_file is not None:
            return self.mapping_file
        default = self.landing_dir / "mapping.yml"
        return default if default.is_file() else None

    @property
    def warehouse_dir(self) -> Path:
        return self.warehouse_path.parent

    @property
    def models_dir(self) -> Path:
        """The model registry (valuetier.registry), beside the warehouse file."""
        return self.warehouse_dir / "models"

    @property
    def quality_dir(self) -> Path:
        """Great Expectations' stores and Data Docs (valuetier.quality), beside the warehouse file."""
        return self.warehouse_dir / "quality"

    @property
    def uses_development_pii_key(self) -> bool:
        return self.pii_key == DEV_PII_KEY

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        settings = cls(
            landing_dir=_path(env.get("VALUETIER_LANDING", "data/landing")),
            warehouse_path=_path(env.get("VALUETIER_WAREHOUSE", "data/warehouse/valuetier.duckdb")),
            pii_key=env.get("VALUETIER_PII_KEY", DEV_PII_KEY),
            dbt_project_dir=REPO_ROOT / "dbt_project",
            dbt_target=env.get("VALUETIER_DBT_TARGET", "duckdb"),
            mapping_file=_path(env["VALUETIER_MAPPING"]) if env.get("VALUETIER_MAPPING") else None,
        )
        if settings.uses_development_pii_key:
            log.warning(
                "VALUETIER_PII_KEY is not set: personal data is hashed with the public development key. "
                "Set a secret key before loading real customer data."
            )
        return settings

    def dbt_environment(self) -> dict[str, str]:
        """What the dbt subprocess must see: absolute paths, so dbt and Python open the same file."""
        return {
            "VALUETIER_WAREHOUSE": str(self.warehouse_path),
            "VALUETIER_PII_KEY": self.pii_key,
        }

    def export_for_dbt(self) -> None:
        # dagster-dbt starts dbt as a child process that inherits this process's environment.
        os.environ.update(self.dbt_environment())
