"""Great Expectations' Data Docs, offline: the stylesheets and scripts its pages load from public
CDNs (Bootstrap, jQuery, bootstrap-table, Vega, Font Awesome) are served from files beside the pages,
and the logo it fetches with the data context's id in the URL is the local copy GX ships.

Offline, as most banks' desks are, the pages otherwise render unstyled with empty tables. The files
come from the npm registry at build time (`make setup`: `python -m valuetier.quality.data_docs fetch`), each
package checked against the sha512 recorded in expectations/data_docs/assets.lock.json, into the venv; each
page is rewritten after GX renders it (`localise`).

    python -m valuetier.quality.data_docs fetch     # what make setup runs
    python -m valuetier.quality.data_docs lock      # resolve the versions again and record their hashes
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from valuetier.core.settings import REPO_ROOT

LOCK = REPO_ROOT / "expectations" / "data_docs" / "assets.lock.json"
REGISTRY = "https://registry.npmjs.org"
VENDOR = "vendor"  # the folder under the site's static/ the pages read from
# Where `fetch` puts the files: inside the venv, so a clean checkout never holds them in git.
ASSETS_DIR = Path(sys.prefix) / "share" / "valuetier" / "data_docs_assets"


@dataclass(frozen=True)
class Asset:
    """One npm package: the CDN addresses GX's templates use, each with the file in the package
    that replaces it, and whole folders that the files refer to (web fonts)."""

    package: str
    version: str
    integrity: str  # npm's dist.integrity: sha512-<base64>
    files: dict[str, str]  # CDN address -> path inside the package
    folders: tuple[str, ...] = ()

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.package}/-/{self.package.split('/')[-1]}-{self.version}.tgz"

    @property
    def local_root(self) -> str:
        return f"{self.package.replace('/', '__')}@{self.version}"


class _CompiledTemplates:
    """Jinja's bytecode cache, kept in memory for the process: GX renders each validation's page
    through a new Jinja environment, which compiled its 36 templates again every time (0.25 s a
    validation, 3 s of a month's 13 checks). Keyed by template name and source checksum, so a
    changed template is compiled anew."""

    def __init__(self) -> None:
        from jinja2 import BytecodeCache

        class _InMemory(BytecodeCache):
            def __init__(self) -> None:
                self.code: dict[str, bytes] = {}
                self.reused = 0

            def load_bytecode(self, bucket) -> None:
                if bucket.key in self.code:
                    bucket.bytecode_from_string(self.code[bucket.key])
                    self.reused += 1

            def dump_bytecode(self, bucket) -> None:
                self.code[bucket.key] = bucket.bytecode_to_string()

        self.cache = _InMemory()


_compiled: _CompiledTemplates | None = None


def compile_templates_once() -> None:
    """Give every GX Data Docs view the process's template cache (idempotent). tests/test_quality.py
    fails loudly if a GX upgrade moves the Jinja environment this sets the cache on."""
    global _compiled
    from great_expectations.render.view.view import DefaultJinjaView

    if _compiled is not None:
        return
    _compiled = _CompiledTemplates()
    created = DefaultJinjaView.__init__

    def with_cache(self, *args, **kwargs) -> None:
        created(self, *args, **kwargs)
        self.env.bytecode_cache = _compiled.cache

    DefaultJinjaView.__init__ = with_cache


def load_assets(lock: Path = LOCK) -> list[Asset]:
    spec = json.loads(lock.read_text(encoding="utf-8"))
    return [Asset(a["package"], a["version"], a["integrity"], a["files"], tuple(a.get("folders", ()))) for a in spec]


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def _check_integrity(asset: Asset, content: bytes) -> None:
    algorithm, expected = asset.integrity.split("-", 1)
    actual = base64.b64encode(hashlib.new(algorithm, content).digest()).decode()
    if actual != expected:
        raise ValueError(f"{asset.tarball}: {algorithm} does not match {LOCK.name}; refusing to use it")


def fetch(dest: Path = ASSETS_DIR, lock: Path = LOCK, progress=print) -> Path:
    """Download every package of the lock, check it and keep the files the pages need."""
    staged = dest.with_name(f".{dest.name}.{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    for asset in load_assets(lock):
        content = _download(asset.tarball)
        _check_integrity(asset, content)
        wanted = set(asset.files.values())
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as tar:
            for member in tar.getmembers():
                inside = member.name.removeprefix("package/")
                if member.isfile() and (inside in wanted or inside.startswith(tuple(f"{f}/" for f in asset.folders))):
                    target = staged / asset.local_root / inside
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
        missing = [f for f in wanted if not (staged / asset.local_root / f).is_file()]
        if missing:
            raise ValueError(f"{asset.package}@{asset.version} has no {', '.join(missing)}")
        progress(f"data docs assets: {asset.package}@{asset.version} ({len(content) // 1024} KiB, integrity checked)")
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, dest)
    return dest


def assets_installed(source: Path = ASSETS_DIR, lock: Path = LOCK) -> bool:
    return all((source / a.local_root / f).is_file() for a in load_assets(lock) for f in a.files.values())


# A tag's Subresource Integrity and CORS mode: a page opened from disk has no origin, and Chromium
# refuses a file:// script asked for with crossorigin. The files were checked at fetch (sha512).
SRI = re.compile(r"(<(?:script|link)\b[^>]*static/" + VENDOR + r"/[^>]*?)\s+(?:integrity|crossorigin)=\"[^\"]*\"")

# GX's logo, fetched from S3 with the data context's id and a timestamp in the query string.
LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z_-]+\.png[^\"']*")


def localise(site: Path, since: float = 0.0, source: Path = ASSETS_DIR, lock: Path = LOCK) -> int:
    """Point every page of a Data Docs site at local copies: the packages' files are copied under
    static/vendor once, and each page's CDN addresses and logo URL are rewritten to relative paths.
    Only pages written since `since` (a time.time()) are read. Returns the pages rewritten. Without
    the fetched files the pages still make no request out, and render unstyled (make setup fetches
    them)."""
    assets = load_assets(lock)
    vendor = site / "static" / VENDOR
    if source.is_dir() and not (vendor / ".complete").exists():
        shutil.rmtree(vendor, ignore_errors=True)
        shutil.copytree(source, vendor)
        (vendor / ".complete").touch()
    rewritten = 0
    for page in site.rglob("*.html"):
        if page.stat().st_mtime < since:
            continue
        html = page.read_text(encoding="utf-8")
        root = os.path.relpath(site, page.parent)
        new = LOGO.sub(f"{root}/static/images/logo-long.png", html)
        for asset in assets:
            for url, inside in asset.files.items():
                new = new.replace(url, f"{root}/static/{VENDOR}/{asset.local_root}/{inside}")
        while SRI.search(new):
            new = SRI.sub(r"\1", new)
        if new != html:
            page.write_text(new, encoding="utf-8")
            rewritten += 1
    return rewritten


def external_references(site: Path) -> list[tuple[Path, str]]:
    """What any page still loads from elsewhere (src= or stylesheet href=): nothing, once localised."""
    found = []
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        found += [(page, m) for m in re.findall(r"src=[\"'](https?://[^\"']+)", html)]
        found += [(page, m) for m in re.findall(r"<link[^>]+href=[\"'](https?://[^\"']+)", html)]
    return found


def _resolve(package: str, wanted: str) -> tuple[str, str]:
    """The newest release matching a CDN's version (exact, or a major like '5'), and its integrity."""
    from packaging.version import Version

    meta = json.loads(_download(f"{REGISTRY}/{package.replace('/', '%2F')}"))
    if wanted in meta["versions"]:
        version = wanted
    else:
        candidates = [Version(v) for v in meta["versions"] if v.split(".")[0] == wanted and "-" not in v]
        version = str(max(candidates))
    return version, meta["versions"][version]["dist"]["integrity"]


def lock(lock_path: Path = LOCK) -> None:
    """Resolve each package's version from the lock's `wants` and record version and integrity."""
    spec = json.loads(lock_path.read_text(encoding="utf-8"))
    for asset in spec:
        asset["version"], asset["integrity"] = _resolve(asset["package"], asset["wants"])
    lock_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m valuetier.quality.data_docs", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "lock"])
    args = parser.parse_args(argv)
    if args.command == "lock":
        lock()
    else:
        print(f"data docs assets in {fetch()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
