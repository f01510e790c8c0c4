"""The registry hosts share through PostgreSQL (``HITL_DATABASE_URL``): the CURRENT pointer,
versions' metadata, their files (chunked ``bytea``), the operator's model choice and the routing
switches live in the database; ``HITL_REGISTRY_DIR`` becomes this host's cache of version files,
filled on first use, so a host that starts empty loads the same versions.

Publishing keeps the file registry's promises across hosts: the files are uploaded first, then
one transaction under the project's advisory lock checks the baseline (compare-and-swap), names
the version and moves CURRENT. A version is visible to every host only once that transaction
commits, whole; a writer killed before it leaves an upload nobody references, removed later.
Files of versions that are neither serving, the serving version's parent (the rollback target),
nor among the last ``keep`` are dropped; their metadata stays.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from backend.ids import ProjectId, parse_project_id
from backend.stores import versions as version_names
from backend.stores.postgres import Database
from backend.stores.registry import (
    ALL_VERSIONS,
    ANY_BASELINE,
    BaselineChanged,
    Registry,
    RegistryError,
    _remove_dead_staging,
    _staging_prefix,
    version_name,
)

log = logging.getLogger(__name__)

CHUNK = 4 * 2**20  # bytes per row of a version's file: streamed, never a whole model in one value
ORPHAN_AGE_S = 6 * 3600  # an upload no version references after this long was left by a dead writer

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS hitl_versions (project BIGINT NOT NULL, version TEXT NOT NULL, "
    "number INTEGER NOT NULL, meta TEXT NOT NULL, upload TEXT NOT NULL, pruned BOOLEAN NOT NULL DEFAULT FALSE, "
    "created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (project, version))",
    "CREATE TABLE IF NOT EXISTS hitl_uploads (upload TEXT PRIMARY KEY, project BIGINT NOT NULL, "
    "started_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS hitl_version_files (upload TEXT NOT NULL, path TEXT NOT NULL, chunk INTEGER NOT NULL, "
    "data BYTEA NOT NULL, PRIMARY KEY (upload, path, chunk))",
    "CREATE TABLE IF NOT EXISTS hitl_registry_state (project BIGINT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, PRIMARY KEY (project, key))",
]


class SharedRegistry(Registry):
    def __init__(self, root: Path, url: str, default_model: str = "", keep: int = 10) -> None:
        super().__init__(root, default_model)
        self.db = Database(url, SCHEMA)
        self.keep = keep

    def shared_state(self) -> str | None:
        try:
            self.db.run(lambda conn: conn.execute("SELECT 1").fetchone())
        except Exception as exc:  # any failure is "not ready", named by its type only
            return f"PostgreSQL (HITL_DATABASE_URL) unavailable ({type(exc).__name__})"
        return "ok"

    # the operator's choice of model and the routing state: small JSON values per project --------
    def model(self, project: ProjectId | str) -> str:
        chosen = self._state(project, "model")
        return self.default_model if chosen is None else str(chosen.get("model") or "")

    def set_model(self, project: ProjectId | str, model: str) -> None:
        self._set_state(project, "model", {"model": model})

    def routing_suspended(self, project: ProjectId | str, name: str) -> str | None:
        switches = self._state(project, "routing") or {}
        entry = switches.get(name) or switches.get(ALL_VERSIONS) or {}
        return str(entry.get("reason") or "auto_accept switched off") if entry else None

    def suspend_routing(self, project: ProjectId | str, name: str, reason: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def work(conn: Any) -> None:
            self.db.lock(conn, f"registry:{parse_project_id(project)}")
            switches = self._state_in(conn, project, "routing") or {}
            switches[name] = {"reason": reason, "at": now}
            self._put_state(conn, project, "routing", switches)

        self.db.run(work)

    def audit_share(self, project: ProjectId | str) -> float | None:
        review = self._state(project, "review")
        try:
            return float(review["audit_share"]) if review else None
        except (KeyError, TypeError, ValueError):
            return None

    def set_audit_share(self, project: ProjectId | str, share: float, why: str) -> None:
        if self.audit_share(project) != share:
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._set_state(project, "review", {"audit_share": share, "why": why, "at": at})

    # reading ---------------------------------------------------------------------------------
    def current(self, project: ProjectId | str) -> str | None:
        pointer = self._state(project, "current")
        return str(pointer["version"]) if pointer and pointer.get("version") else None

    def versions(self, project: ProjectId | str) -> list[str]:
        rows = self.db.run(
            lambda conn: conn.execute(
                "SELECT version FROM hitl_versions WHERE project = %s ORDER BY number", (parse_project_id(project),)
            ).fetchall()
        )
        return [row[0] for row in rows]

    def projects(self) -> list[ProjectId]:
        rows = self.db.run(
            lambda conn: conn.execute("SELECT DISTINCT project FROM hitl_versions ORDER BY project").fetchall()
        )
        return [int(row[0]) for row in rows]

    def meta(self, project: ProjectId | str, version: str) -> dict[str, Any]:
        return json.loads(self._meta_text(int(parse_project_id(project)), version_name(version)))

    def version_dir(self, project: ProjectId | str, version: str) -> Path:
        """This host's copy of the version's files, fetched from the database on first use."""
        path = self.project_dir(project) / "versions" / version_name(version)
        if path.is_dir():
            return path
        row = self.db.run(
            lambda conn: conn.execute(
                "SELECT upload, pruned, meta FROM hitl_versions WHERE project = %s AND version = %s",
                (parse_project_id(project), version),
            ).fetchone()
        )
        if row is None:
            raise RegistryError(f"project {project} has no version {version!r}")
        if row[1]:
            raise RegistryError(
                f"project {project}: the files of version {version!r} were dropped by the retention policy "
                "(HITL_REGISTRY_KEEP); its metadata is kept"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fetching = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix()}fetch-", dir=self.project_dir(project)))
        try:
            self._download(row[0], fetching)
            (fetching / "meta.json").write_text(row[2])
            try:
                fetching.rename(path)
            except OSError:  # another thread of this host fetched it first
                if not path.is_dir():
                    raise
        finally:
            shutil.rmtree(fetching, ignore_errors=True)
        return path

    # writing ---------------------------------------------------------------------------------
    def publish(
        self,
        project: ProjectId | str,
        write: Callable[[Path], dict[str, Any]],
        make_current: bool = True,
        expected_current: str | object | None = ANY_BASELINE,
    ) -> str:
        pid = int(parse_project_id(project))
        pdir = self.project_dir(project)
        (pdir / "versions").mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(pdir)  # what killed writers on this host left
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix()}{int(time.time())}-", dir=pdir))
        upload = uuid.uuid4().hex
        try:
            meta = dict(write(staging))
            self._upload(pid, upload, staging)

            def commit(conn: Any) -> tuple[str, dict[str, Any]]:
                self.db.lock(conn, f"registry:{pid}")
                current = (self._state_in(conn, pid, "current") or {}).get("version")
                if expected_current is not ANY_BASELINE and current != expected_current:
                    raise BaselineChanged(project, expected_current, current)  # type: ignore[arg-type]
                names = [r[0] for r in conn.execute("SELECT version FROM hitl_versions WHERE project = %s", (pid,))]
                version = version_names.next_published(names)
                done = dict(meta, version=version, project=str(pid), created_at=time.time())
                done.setdefault("parent", current)
                done.setdefault("family", version)
                conn.execute(
                    "INSERT INTO hitl_versions (project, version, number, meta, upload, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (pid, version, version_names.number(version), _meta_json(done), upload, time.time()),
                )
                conn.execute("DELETE FROM hitl_uploads WHERE upload = %s", (upload,))
                if make_current:
                    self._put_state(conn, pid, "current", {"version": version})
                return version, done

            try:
                version, done = self.db.run(commit)
            except BaseException:
                self.db.run(lambda conn: _drop_upload(conn, upload))
                raise
            (staging / "meta.json").write_text(_meta_json(done))
            staging.rename(pdir / "versions" / version)  # this host's cache: no second download
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._retain(pid)
        return version

    def promote(self, project: ProjectId | str, version: str) -> None:
        pid = int(parse_project_id(project))

        def work(conn: Any) -> None:
            self.db.lock(conn, f"registry:{pid}")
            row = conn.execute(
                "SELECT pruned FROM hitl_versions WHERE project = %s AND version = %s", (pid, version_name(version))
            ).fetchone()
            if row is None or row[0]:
                raise RegistryError(f"project {project} has no version {version!r} with its files")
            self._put_state(conn, pid, "current", {"version": version})

        self.db.run(work)

    # internals -------------------------------------------------------------------------------
    def _meta_text(self, project: int, version: str) -> str:
        return _meta_cached(self.db.url, project, version, self.db)

    def _state(self, project: ProjectId | str, key: str) -> Any:
        return self.db.run(lambda conn: self._state_in(conn, project, key))

    def _state_in(self, conn: Any, project: ProjectId | str, key: str) -> Any:
        row = conn.execute(
            "SELECT value FROM hitl_registry_state WHERE project = %s AND key = %s", (parse_project_id(project), key)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _set_state(self, project: ProjectId | str, key: str, value: Any) -> None:
        self.db.run(lambda conn: self._put_state(conn, project, key, value))

    def _put_state(self, conn: Any, project: ProjectId | str, key: str, value: Any) -> None:
        conn.execute(
            "INSERT INTO hitl_registry_state (project, key, value, at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (project, key) DO UPDATE SET value = EXCLUDED.value, at = EXCLUDED.at",
            (parse_project_id(project), key, json.dumps(value), time.time()),
        )

    def _upload(self, project: int, upload: str, folder: Path) -> None:
        """Every file of ``folder`` into the database, CHUNK bytes per row, each file its own transaction."""
        self.db.run(
            lambda conn: conn.execute(
                "INSERT INTO hitl_uploads (upload, project, started_at) VALUES (%s, %s, %s)",
                (upload, project, time.time()),
            )
        )
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()

            def work(conn: Any, path: Path = path, relative: str = relative) -> None:
                with open(path, "rb") as handle:
                    for number, data in enumerate(iter(lambda: handle.read(CHUNK), b"")):
                        conn.execute(
                            "INSERT INTO hitl_version_files (upload, path, chunk, data) VALUES (%s, %s, %s, %s)",
                            (upload, relative, number, data),
                        )
                    if path.stat().st_size == 0:
                        conn.execute(
                            "INSERT INTO hitl_version_files (upload, path, chunk, data) VALUES (%s, %s, 0, %s)",
                            (upload, relative, b""),
                        )

            self.db.run(work)

    def _download(self, upload: str, folder: Path) -> None:
        paths = self.db.run(
            lambda conn: [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT path FROM hitl_version_files WHERE upload = %s ORDER BY path", (upload,)
                )
            ]
        )
        for relative in paths:
            target = folder / relative
            if not target.resolve().is_relative_to(folder.resolve()):
                raise RegistryError(f"a version file's path leaves its folder: {relative!r}")
            target.parent.mkdir(parents=True, exist_ok=True)

            def work(conn: Any, relative: str = relative, target: Path = target) -> None:
                with open(target, "wb") as handle, conn.cursor(name="chunks") as cursor:
                    cursor.execute(
                        "SELECT data FROM hitl_version_files WHERE upload = %s AND path = %s ORDER BY chunk",
                        (upload, relative),
                    )
                    for (data,) in cursor:
                        handle.write(data)

            self.db.run(work)

    def _retain(self, project: int) -> None:
        """Drop the files of versions no host needs (see the module docstring) and of uploads left
        by writers that died before their commit."""

        def work(conn: Any) -> list[str]:
            self.db.lock(conn, f"registry:{project}")
            current = (self._state_in(conn, project, "current") or {}).get("version")
            rows = conn.execute(
                "SELECT version, upload, meta FROM hitl_versions WHERE project = %s AND NOT pruned "
                "ORDER BY number DESC",
                (project,),
            ).fetchall()
            parent = next((json.loads(m).get("parent") for v, _, m in rows if v == current), None)
            dropped = []
            for rank, (version, upload, _) in enumerate(rows):
                if rank < self.keep or version in (current, parent):
                    continue
                _drop_upload(conn, upload)
                conn.execute(
                    "UPDATE hitl_versions SET pruned = TRUE WHERE project = %s AND version = %s", (project, version)
                )
                dropped.append(version)
            for (upload,) in conn.execute(
                "SELECT upload FROM hitl_uploads WHERE project = %s AND started_at < %s",
                (project, time.time() - ORPHAN_AGE_S),
            ).fetchall():
                _drop_upload(conn, upload)
            return dropped

        for version in self.db.run(work):
            shutil.rmtree(self.project_dir(project) / "versions" / version, ignore_errors=True)
            log.info("project %s: the files of %s were dropped (HITL_REGISTRY_KEEP=%d)", project, version, self.keep)


def _meta_json(meta: dict[str, Any]) -> str:
    """As the file registry writes meta.json: one text on every host."""
    return json.dumps(meta, indent=2, sort_keys=True, default=str)


def _drop_upload(conn: Any, upload: str) -> None:
    conn.execute("DELETE FROM hitl_version_files WHERE upload = %s", (upload,))
    conn.execute("DELETE FROM hitl_uploads WHERE upload = %s", (upload,))


@lru_cache(maxsize=4096)
def _meta_cached(url: str, project: int, version: str, db: Database) -> str:
    """A version's metadata never changes once published: read it once per process."""
    row = db.run(
        lambda conn: conn.execute(
            "SELECT meta FROM hitl_versions WHERE project = %s AND version = %s", (project, version)
        ).fetchone()
    )
    if row is None:
        raise RegistryError(f"project {project} has no version {version!r}")
    return row[0]
