"""Versioned model registry in the warehouse folder: one folder per training, a model card, a
verified artifact, and a champion pointer that moves only when a challenger wins (or on rollback).

    <warehouse folder>/models/v0001/model.joblib
    <warehouse folder>/models/v0001/card.json
    <warehouse folder>/models/champion.json
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import joblib

from valuetier.core.leftovers import abandoned

PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message names the version and file."""


class TamperedArtifactError(RegistryError):
    """The artifact's bytes do not match the sha256 its model card recorded."""


class IncompatibleArtifactError(RegistryError):
    """The artifact was written by package versions this environment cannot safely load."""


@dataclass(frozen=True)
class ModelCard:
    version: str
    training_months: list[str]
    holdout_month: str
    horizon_months: int
    value_measure: str
    features: list[str]
    parameters: dict
    metrics: dict  # holdout metrics of the model and of each baseline
    data_fingerprint: str  # sha256 of the training rows
    package_versions: dict[str, str]
    artifact_sha256: str
    status: str = "challenger"  # champion, rejected, or challenger until decided
    decision: str = ""
    extra: dict = field(default_factory=dict)
    # The promotion decision (valuetier.tiering.promotion): every ranking compared, its figures, the margin,
    # the noise band against the champion, and why. Empty on cards from before the gate.
    promotion: dict = field(default_factory=dict)


def package_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in PACKAGES}


def _replace_file(path: Path, text: str) -> None:
    """The file's new content, or its old one if the process dies meanwhile: never half of it."""
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    with staged.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, path)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Registry:
    def __init__(self, root: Path):
        self.root = root

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith("v") and (p / "card.json").exists()
        )

    def card(self, version: str) -> ModelCard:
        path = self.root / version / "card.json"
        if not path.exists():
            raise RegistryError(f"no model version {version} in {self.root}")
        return ModelCard(**json.loads(path.read_text()))

    def register(self, models, staged: Callable[[], None] = lambda: None, **card_fields) -> ModelCard:
        """Write a new version: the artifact, then its card with the artifact's sha256. `staged` is
        called when both are staged, before the rename that makes them a version."""
        version = f"v{len(self.versions()) + 1:04d}"
        folder = self.root / version
        # Written in a staging folder and renamed whole: a run killed meanwhile leaves no version
        # (a folder without its card, from before, is not a version and is replaced), and its
        # staging folder is removed here, by the next training.
        for left in abandoned(self.root, r"\.v\d+\.(\d+)"):
            shutil.rmtree(left, ignore_errors=True)
        staging = self.root / f".{version}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        artifact = staging / "model.joblib"
        joblib.dump(models, artifact, compress=3)
        card = ModelCard(
            version=version, package_versions=package_versions(), artifact_sha256=_sha256(artifact), **card_fields
        )
        (staging / "card.json").write_text(json.dumps(asdict(card), indent=1, sort_keys=True) + "\n")
        _fsync_tree(staging)
        staged()
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        return card

    def load(self, version: str):
        """The trained models of a version, after checking the artifact's hash and package versions."""
        card = self.card(version)
        artifact = self.root / version / "model.joblib"
        # The bytes checked are the bytes loaded: read once, so the file cannot change in between.
        try:
            content = artifact.read_bytes()
        except FileNotFoundError as exc:
            raise RegistryError(f"{artifact} is missing: model version {version} cannot be loaded") from exc
        actual = hashlib.sha256(content).hexdigest()
        if actual != card.artifact_sha256:
            raise TamperedArtifactError(
                f"{artifact}: sha256 {actual[:12]}... does not match {card.artifact_sha256[:12]}... in its model card; "
                "refusing to load it"
            )
        here = package_versions()
        for name, recorded in card.package_versions.items():
            if recorded.split(".")[:2] != here.get(name, "").split(".")[:2]:
                raise IncompatibleArtifactError(
                    f"{artifact} was written with {name} {recorded}; this environment has {here.get(name)}: "
                    "retrain, or install the recorded version"
                )
        try:
            return joblib.load(io.BytesIO(content))
        except (AttributeError, ImportError) as exc:
            # Written by a ValueTier whose model classes this one no longer has.
            raise IncompatibleArtifactError(
                f"{artifact} holds model classes this version of ValueTier cannot read ({exc}): retrain"
            ) from exc

    def champion_version(self) -> str | None:
        pointer = self.root / "champion.json"
        return json.loads(pointer.read_text())["version"] if pointer.exists() else None

    def decide(self, challenger: ModelCard, promoted: bool, why: str, promotion: dict) -> ModelCard:
        """Record the promotion decision on the challenger's card; a promoted challenger becomes the
        champion and the previous one is retired."""
        previous = self.champion_version()
        status = "champion" if promoted else "rejected"
        decided = ModelCard(**{**asdict(challenger), "status": status, "decision": why, "promotion": promotion})
        self._write_card(decided)
        if promoted:
            if previous:
                self._set_status(previous, "retired", f"replaced by {challenger.version}")
            self._point_champion_at(challenger.version)
        return decided

    def preferred_baseline(self) -> str | None:
        """The better baseline of the newest decided model's holdout (rfm_weighted or clv_12m): what
        the tiers rank while no model is champion. None before any model was judged."""
        for version in reversed(self.versions()):
            better = self.card(version).promotion.get("better_baseline")
            if better:
                return better
        return None

    def rollback(self, version: str) -> ModelCard:
        """Make a named version the champion again (it must load cleanly)."""
        self.load(version)
        previous = self.champion_version()
        if previous and previous != version:
            self._set_status(previous, "retired", f"rolled back to {version}")
        card = self._set_status(version, "champion", f"rolled back to from {previous}")
        self._point_champion_at(version)
        return card

    def _set_status(self, version: str, status: str, why: str) -> ModelCard:
        card = ModelCard(**{**asdict(self.card(version)), "status": status, "decision": why})
        self._write_card(card)
        return card

    def _write_card(self, card: ModelCard) -> None:
        _replace_file(self.root / card.version / "card.json", json.dumps(asdict(card), indent=1, sort_keys=True) + "\n")

    def _point_champion_at(self, version: str) -> None:
        _replace_file(self.root / "champion.json", json.dumps({"version": version}) + "\n")
