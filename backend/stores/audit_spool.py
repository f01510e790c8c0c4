"""Audit writes that PostgreSQL could not take, kept on disk until it can.

One JSON line per write (the statement and its rows), appended under a lock shared by every
process of the data folder (gunicorn workers, RQ workers, the CLI). Bounded: past ``max_bytes``
a write is refused with an error that says so, never dropped silently. Replayed in order by
whichever process next reaches the database; a write replayed twice (a crash between the insert
and the rewrite) is harmless where the table has a key, and a duplicate event row otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class AuditSpoolFull(RuntimeError):
    """The spool reached its bound: the database has been away too long for this write to wait."""


class AuditSpool:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._counted: tuple[int, int, int] = (-1, -1, 0)  # (size, mtime_ns, lines): counted once per change

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def append(self, statement: str, rows: list[Any]) -> None:
        line = json.dumps({"sql": statement, "rows": rows}, separators=(",", ":")) + "\n"
        with self._locked():
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line) > self.max_bytes:
                raise AuditSpoolFull(
                    f"the audit spool {self.path} is full ({size} bytes, bound {self.max_bytes}): bring the "
                    "audit database back (HITL_AUDIT_DB_URL), or raise HITL_AUDIT_SPOOL_MAX_MB"
                )
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    @property
    def rejected(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    def reject(self, statement: str, rows: list[Any]) -> None:
        """A waiting write the database refused (not for being away): kept beside, for a person."""
        with open(self.rejected, "a") as f:
            f.write(json.dumps({"sql": statement, "rows": rows}) + "\n")

    def pending(self) -> int:
        """Writes waiting (a stat per call; the lines are counted only when the file changed)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return 0
        if stat.st_size == 0:
            return 0
        if (stat.st_size, stat.st_mtime_ns) != self._counted[:2]:
            with open(self.path, "rb") as f:
                self._counted = (stat.st_size, stat.st_mtime_ns, sum(1 for _ in f))
        return self._counted[2]

    def replay(self, execute: Callable[[str, list[Any]], None]) -> int:
        """``execute`` each waiting write in order; those after a failure stay (and it is raised)."""
        with self._locked():
            if not self.path.exists():
                return 0
            lines = self.path.read_bytes().splitlines(keepends=True)
            done = 0
            try:
                for line in lines:
                    entry = json.loads(line)
                    execute(entry["sql"], entry["rows"])
                    done += 1
            finally:
                with open(self.path, "r+b") as f:  # in place: a rename would strand writers of the old file
                    f.write(b"".join(lines[done:]))
                    f.truncate()
            return done
