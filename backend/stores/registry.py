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
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from backend.ids import ProjectId, parse_project_id
from backend.stores import versions as version_names
from backend.stores.versions import COLD_START


class RegistryError(RuntimeError):
    pass


class CorruptMeta(RegistryError, ValueError):
    """A version's meta.json cannot be read as JSON (a ValueError too, as json's own error was)."""


class BaselineChanged(RegistryError):
    """Another version became current after the candidate was gated against ``expected``."""

    def __init__(self, project: ProjectId | str, expected: str | None, current: str | None) -> None:
        super().__init__(
            f"project {project}: the candidate was gated against {expected or COLD_START}, "
            f"but {current or COLD_START} is serving now"
        )
        self.expected = expected
        self.current = current


ANY_BASELINE = object()  # publish() without a compare-and-swap (the CLI's and the tools' publishes)
STAGING_MAX_AGE_S = 6 * 3600
ROUTING = "routing.json"  # per project: the routing audit's switches, {name: {"reason", "at"}}
ALL_VERSIONS = "*"  # a switch for every version (written when the routing state was found unreadable)


def version_name(version: str) -> str:
    """A version name as the registry writes it (``v<n>-<timestamp>``, see ``stores/versions.py``);
    anything else, such as a path, is refused before it is joined to a folder."""
    if not version_names.is_published(version):
        raise RegistryError(f"{version!r} is not a version name (like v12-20261125134500)")
    return version


def served_name(meta: dict[str, Any]) -> str:
    """The name Label Studio knows a version by: its family's (see ``next_family``)."""
    return str(meta.get("family") or meta["version"])


def next_family(
    serving: dict[str, Any] | None,
    kind: str,
    fingerprint: str,
    examples: int,
    every: int,
    growth: float = 0.0,
    min_age_s: float = 0.0,
    now: float | None = None,
) -> dict[str, Any]:
    """The family a new version joins. Head refreshes continue the serving version's family (Label
    Studio keeps seeing one version, whose predictions are never rewritten) until ``every`` more
    annotations arrived since the family began, or more than ``growth`` times as many as it began
    with (early on, each label changes the model a lot), but never sooner than ``min_age_s`` after
    it began (each family is a version name Label Studio keeps until it can be retired: see
    ``query/sync.py``); a fine-tune, another kind of serving version or another label space starts
    a new family, named after its first version. ``now`` (seconds): stamps when a family begins.
    A model plug-in's refits (``kind`` "plugin") form families as head refreshes do."""
    fresh: dict[str, Any] = {"family_examples": examples}
    if now is not None:
        fresh["family_started"] = now
    if serving is None or kind not in ("head", "plugin") or every <= 0:
        return fresh
    same_kind = (serving.get("training") or {}).get("kind") == kind
    if not same_kind or serving.get("spec", {}).get("fingerprint") != fingerprint:
        return fresh
    started = int(serving.get("family_examples", (serving.get("training") or {}).get("examples", 0)))
    began = serving.get("family_started")
    young = now is not None and began is not None and now - float(began) < min_age_s
    if not young and (examples - started >= every or (growth > 0 and examples - started > growth * started)):
        return fresh
    kept: dict[str, Any] = {"family": served_name(serving), "family_examples": started}
    if began is not None:
        kept["family_started"] = began
    return kept


MODEL_FILE = "model.json"  # the project's model plug-in, as the operator chose it (hitl configs load --model)


class Registry:
    def __init__(self, root: Path, default_model: str = "") -> None:
        self.root = Path(root)
        self.default_model = default_model  # HITL_MODEL: the deployment's plug-in ("" = the bundled encoder)

    @classmethod
    def from_settings(cls, settings: Any) -> Registry:
        """The registry the backend uses: the one construction point. With HITL_DATABASE_URL it is
        shared by every host through PostgreSQL (``stores/shared_registry.py``) and HITL_REGISTRY_DIR
        is this host's cache of version files; else HITL_REGISTRY_DIR holds it all."""
        url = getattr(settings, "database_url", None)
        if url:
            from backend.stores.shared_registry import SharedRegistry

            return SharedRegistry(settings.registry_dir, url, getattr(settings, "model", ""), settings.registry_keep)
        return cls(settings.registry_dir, getattr(settings, "model", ""))

    # the operator's choice of model ------------------------------------------------------------
    def model(self, project: ProjectId | str) -> str:
        """The model plug-in a project trains (``package.module:Class``), "" for the bundled encoder:
        the project's own choice, else HITL_MODEL. Only the operator writes either."""
        try:
            chosen = json.loads((self.project_dir(project) / MODEL_FILE).read_text())
        except FileNotFoundError:
            return self.default_model
        except (OSError, ValueError) as exc:
            raise RegistryError(
                f"{MODEL_FILE} of project {project} cannot be read ({exc}): rerun hitl configs load --model"
            ) from None
        return str(chosen.get("model") or "")

    def set_model(self, project: ProjectId | str, model: str) -> None:
        """Choose the project's model plug-in ("" = the bundled encoder); the next retrain uses it."""
        self.project_dir(project).mkdir(parents=True, exist_ok=True)
        with self._lock(project):
            _write_durably(self.project_dir(project) / MODEL_FILE, json.dumps({"model": model}))

    def allowed_plugins(self, project: ProjectId | str) -> set[str]:
        """The plug-in classes a version of this project may be loaded with: the operator's choices."""
        return {name for name in (self.default_model, self.model(project)) if name}

    def shared_state(self) -> str | None:
        """For ``/ready``: "ok" or what is wrong with the database hosts share; None on one machine."""
        return None

    # reading ---------------------------------------------------------------------------------
    def project_dir(self, project: ProjectId | str) -> Path:
        return self.root / str(parse_project_id(project))

    def current(self, project: ProjectId | str) -> str | None:
        try:
            version = (self.project_dir(project) / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return version or None

    def version_dir(self, project: ProjectId | str, version: str) -> Path:
        path = self.project_dir(project) / "versions" / version_name(version)
        if not path.is_dir():
            raise RegistryError(f"project {project} has no version {version!r}")
        return path

    def meta(self, project: ProjectId | str, version: str) -> dict[str, Any]:
        path = self.version_dir(project, version) / "meta.json"
        try:
            return json.loads(path.read_text())
        except ValueError as exc:  # JSON, or bytes that are not UTF-8
            raise CorruptMeta(
                f"{path} is not valid JSON ({exc}): restore it from a backup, or move the version "
                "folder away if it is not serving"
            ) from None

    def served(self, project: ProjectId | str, version: str | None = None) -> str | None:
        """The name Label Studio sees for ``version`` (default: the current one); None in cold start."""
        version = version or self.current(project)
        return served_name(self.meta(project, version)) if version else None

    def versions(self, project: ProjectId | str) -> list[str]:
        folder = self.project_dir(project) / "versions"
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if p.is_dir() and version_names.is_published(p.name)]
        return sorted(found, key=lambda name: version_names.number(name) or 0)

    def projects(self) -> list[ProjectId]:
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit() and (p / "versions").is_dir())

    # writing ---------------------------------------------------------------------------------
    def publish(
        self,
        project: ProjectId | str,
        write: Callable[[Path], dict[str, Any]],
        make_current: bool = True,
        expected_current: str | object | None = ANY_BASELINE,
    ) -> str:
        """Create a version: ``write(folder)`` fills a staging folder and returns metadata.

        With ``expected_current`` (the version a candidate was gated against, None for cold start)
        the publish is a compare-and-swap: if another version became current meanwhile, nothing is
        published and BaselineChanged is raised, so two retrains of one project can never let an
        older candidate replace a newer one unjudged."""
        pdir = self.project_dir(project)
        (pdir / "versions").mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(pdir)
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix()}{int(time.time())}-", dir=pdir))
        try:
            meta = dict(write(staging))
            with self._lock(project):
                current = self.current(project)
                if expected_current is not ANY_BASELINE and current != expected_current:
                    raise BaselineChanged(project, expected_current, current)  # type: ignore[arg-type]
                version = self._next_version(project)
                meta.update(version=version, project=str(parse_project_id(project)), created_at=time.time())
                meta.setdefault("parent", current)
                meta.setdefault("family", version)  # the first version of a new family names it
                _write_json(staging / "meta.json", meta)
                _fsync_tree(staging)
                os.rename(staging, pdir / "versions" / version)
                _fsync_dir(pdir / "versions")
                if make_current:
                    self._set_current(project, version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return version

    def promote(self, project: ProjectId | str, version: str) -> None:
        self.version_dir(project, version)  # raises if missing or not a version name
        with self._lock(project):
            self._set_current(project, version)

    # routing switches ------------------------------------------------------------------------
    def routing_suspended(self, project: ProjectId | str, name: str) -> str | None:
        """Why auto_accept is off for the version (family) Label Studio knows as ``name``, or None.
        Fails closed: a routing state that cannot be read (truncated, edited by hand) switches
        auto_accept off for every version, since it may have held this one's switch."""
        try:
            switches = json.loads((self.project_dir(project) / ROUTING).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return f"the routing state ({ROUTING}) cannot be read ({type(exc).__name__}): auto_accept is off"
        if not isinstance(switches, dict) or not all(isinstance(v, dict) for v in switches.values()):
            return f"the routing state ({ROUTING}) is not a map of switches: auto_accept is off"
        entry = switches.get(name) or switches.get(ALL_VERSIONS) or {}
        return str(entry.get("reason") or "auto_accept switched off") if entry else None

    def suspend_routing(self, project: ProjectId | str, name: str, reason: str) -> None:
        """Switch auto_accept off for ``name`` (the routing audit's decision); servers see it on their
        next request. Written atomically and durably, like ``CURRENT``. A routing state that cannot be
        read is kept aside and replaced by one that switches every version off (its switches are
        unknown): delete its ``"*"`` entry to let the routing audit decide again."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock(project):
            path = self.project_dir(project) / ROUTING
            try:
                switches = json.loads(path.read_text())
                if not isinstance(switches, dict) or not all(isinstance(v, dict) for v in switches.values()):
                    raise ValueError("not a map of switches")
            except FileNotFoundError:
                switches = {}
            except (OSError, ValueError) as exc:
                aside = path.with_name(f"{ROUTING}.unreadable-{now}")
                os.replace(path, aside)
                switches = {
                    ALL_VERSIONS: {
                        "reason": f"{ROUTING} was unreadable ({exc}; kept as {aside.name}): "
                        "auto_accept is off for every version",
                        "at": now,
                    }
                }
            switches[name] = {"reason": reason, "at": now}
            _write_durably(path, json.dumps(switches, indent=1))

    def audit_share(self, project: ProjectId | str) -> float | None:
        """The share of auto_accept tasks sent to people as audit samples, as the last sync set it
        (raised while drift alarms); None before any sync set one."""
        try:
            return float(json.loads((self.project_dir(project) / "review.json").read_text())["audit_share"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def set_audit_share(self, project: ProjectId | str, share: float, why: str) -> None:
        """Record the audit share in force for ``/predict`` (written atomically, only on a change)."""
        if self.audit_share(project) == share:
            return
        with self._lock(project):
            path = self.project_dir(project) / "review.json"
            _write_durably(
                path,
                json.dumps(
                    {"audit_share": share, "why": why, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                ),
            )

    # internals -------------------------------------------------------------------------------
    def _next_version(self, project: ProjectId | str) -> str:
        return version_names.next_published(self.versions(project))

    def _set_current(self, project: ProjectId | str, version: str) -> None:
        _write_durably(self.project_dir(project) / "CURRENT", version + "\n")

    @contextlib.contextmanager
    def _lock(self, project: ProjectId | str) -> Iterator[None]:
        pdir = self.project_dir(project)
        pdir.mkdir(parents=True, exist_ok=True)
        with open(pdir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _staging_prefix() -> str:
    return f".staging-{socket.gethostname()}-{os.getpid()}-"


def _remove_dead_staging(pdir: Path) -> None:
    """Staging folders are never published once their writer is gone (kill -9, a lost container).
    Drop those of dead processes on this host, and any older than STAGING_MAX_AGE_S: in containers
    every process is pid 1 and other hosts' pids cannot be checked, so age decides there."""
    host = socket.gethostname()
    for folder in pdir.glob(".staging-*"):
        try:
            age = time.time() - folder.stat().st_mtime
        except FileNotFoundError:
            continue
        name = folder.name[len(".staging-") :]
        if age > STAGING_MAX_AGE_S or (name.startswith(host + "-") and _dead(name[len(host) + 1 :].split("-", 1)[0])):
            shutil.rmtree(folder, ignore_errors=True)


def _dead(pid: str) -> bool:
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _fsync_tree(folder: Path) -> None:
    """Flush a version's files and folders to disk before it is renamed into place."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            _fsync_dir(path)
    _fsync_dir(folder)


def _write_durably(path: Path, text: str) -> None:
    """Replace ``path`` atomically, on disk before it is visible: a crash leaves the old or the new
    file, never a truncated one (readers of routing state fail closed on one anyway)."""
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
