"""Model versions on local disk, per Label Studio project, with atomic publish and a CURRENT pointer.

Layout::

    <root>/<project>/versions/<version>/meta.json      what, when, from which data, how good
    <root>/<project>/versions/<version>/head.safetensors
    <root>/<project>/versions/<version>/encoder/        only for fine-tuned encoders
    <root>/<project>/CURRENT                            the version being served

A version is written in a staging folder and renamed into ``versions/`` whole, then CURRENT is
replaced atomically: a reader sees the old version or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

COLD_START = "cold-start"
_VERSION_RE = re.compile(r"^v(\d+)-")
_PROJECT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class RegistryError(RuntimeError):
    pass


def project_key(project: Any) -> str:
    """Label Studio sends ``"<id>.<created-at>"``; versions are kept per project id."""
    if project is None or isinstance(project, bool):
        raise ValueError("project is missing")
    key = str(project).split(".", 1)[0].strip()
    if not key or not _PROJECT_RE.match(key):
        raise ValueError(f"project must look like '<id>' or '<id>.<timestamp>', got {project!r}")
    return key


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # reading ---------------------------------------------------------------------------------
    def project_dir(self, project: str) -> Path:
        return self.root / project_key(project)

    def current(self, project: str) -> str | None:
        try:
            version = (self.project_dir(project) / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return version or None

    def version_dir(self, project: str, version: str) -> Path:
        path = self.project_dir(project) / "versions" / version
        if not path.is_dir():
            raise RegistryError(f"project {project} has no version {version!r}")
        return path

    def meta(self, project: str, version: str) -> dict[str, Any]:
        return json.loads((self.version_dir(project, version) / "meta.json").read_text())

    def versions(self, project: str) -> list[str]:
        folder = self.project_dir(project) / "versions"
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
        return sorted(names, key=_version_number)

    def projects(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "versions").is_dir())

    # writing ---------------------------------------------------------------------------------
    def publish(
        self,
        project: str,
        write: Callable[[Path], dict[str, Any]],
        make_current: bool = True,
    ) -> str:
        """Create a version: ``write(folder)`` fills a staging folder and returns metadata."""
        pdir = self.project_dir(project)
        (pdir / "versions").mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(pdir)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=pdir))
        try:
            meta = dict(write(staging))
            with self._lock(project):
                version = self._next_version(project)
                meta.update(version=version, project=project_key(project), created_at=time.time())
                meta.setdefault("parent", self.current(project))
                _write_json(staging / "meta.json", meta)
                os.rename(staging, pdir / "versions" / version)
                if make_current:
                    self._set_current(project, version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return version

    def promote(self, project: str, version: str) -> None:
        self.version_dir(project, version)  # raises if missing
        with self._lock(project):
            self._set_current(project, version)

    # internals -------------------------------------------------------------------------------
    def _next_version(self, project: str) -> str:
        existing = self.versions(project)
        number = _version_number(existing[-1]) + 1 if existing else 1
        return f"v{number}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"

    def _set_current(self, project: str, version: str) -> None:
        pdir = self.project_dir(project)
        tmp = pdir / f".CURRENT.{os.getpid()}"
        tmp.write_text(version + "\n")
        os.replace(tmp, pdir / "CURRENT")

    @contextlib.contextmanager
    def _lock(self, project: str) -> Iterator[None]:
        pdir = self.project_dir(project)
        pdir.mkdir(parents=True, exist_ok=True)
        with open(pdir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_dead_staging(pdir: Path) -> None:
    """Staging folders of processes that died mid-write (kill -9) are never published; drop them."""
    for folder in pdir.glob(".staging-*"):
        pid = folder.name.split("-")[1] if folder.name.count("-") >= 2 else ""
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


def _version_number(name: str) -> int:
    match = _VERSION_RE.match(name)
    return int(match.group(1)) if match else 0


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
