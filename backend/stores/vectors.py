"""Where the embedding cache keeps its vectors between processes: a SQLite file per encoder on one
machine; with HITL_DATABASE_URL, one table in the shared PostgreSQL, so a pool one host embedded is
never embedded again by another (a 1M-task pool takes about 90 minutes on 2 CPU cores).

The shared table is a cache too: where the database cannot be reached, a read finds nothing (the
encoder embeds) and a write is dropped, each with a warning; the sync goes on."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from backend.stores.postgres import Database, is_postgres

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS hitl_embeddings (encoder TEXT NOT NULL, key TEXT NOT NULL, vec BYTEA NOT NULL, "
    "PRIMARY KEY (encoder, key))"
]
CHUNK = 500  # keys per query
AWAY_S = 60.0  # how long a host embeds for itself after the shared table failed


class VectorStore(Protocol):
    path: Path | None  # the file on this machine; None when shared

    def read(self, keys: list[str]) -> list[tuple[str, bytes]]: ...

    def write(self, rows: Iterable[tuple[str, bytes]]) -> None: ...


def vector_store(folder: Path, identity: str, database_url: str | None) -> VectorStore:
    """The shared table with a PostgreSQL URL, else this machine's SQLite file (``folder``)."""
    if is_postgres(database_url):
        return PostgresVectors(str(database_url), identity)
    return SqliteVectors(Path(folder) / f"embeddings-{identity}.sqlite3")


class SqliteVectors:
    def __init__(self, path: Path) -> None:
        self.path: Path | None = path
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self._lock = threading.Lock()

    def read(self, keys: list[str]) -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        with self._lock:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                marks = ",".join("?" * len(chunk))
                found += self._db.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk).fetchall()
        return found

    def write(self, rows: Iterable[tuple[str, bytes]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO emb VALUES (?, ?)", rows)


class PostgresVectors:
    def __init__(self, url: str, identity: str) -> None:
        self.identity = identity
        self.db = Database(url, SCHEMA)
        self.path: Path | None = None  # nothing on this machine
        self._away_until = 0.0  # after a failure the table is left alone a while: no timeout per chunk

    def read(self, keys: list[str]) -> list[tuple[str, bytes]]:
        def work(conn: Any) -> list[tuple[str, bytes]]:
            found: list[tuple[str, bytes]] = []
            for start in range(0, len(keys), CHUNK):
                found += [
                    (key, bytes(vec))
                    for key, vec in conn.execute(
                        "SELECT key, vec FROM hitl_embeddings WHERE encoder = %s AND key = ANY(%s)",
                        (self.identity, keys[start : start + CHUNK]),
                    )
                ]
            return found

        return self._or_else(lambda: self.db.run(work), [], "read")

    def write(self, rows: Iterable[tuple[str, bytes]]) -> None:
        listed = [(self.identity, key, vec) for key, vec in rows]

        def work(conn: Any) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO hitl_embeddings (encoder, key, vec) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    listed,
                )

        if listed:
            self._or_else(lambda: self.db.run(work), None, "write")

    def _or_else(self, call: Callable[[], T], fallback: T, what: str) -> T:
        import psycopg

        if time.monotonic() < self._away_until:
            return fallback
        try:
            return call()
        except psycopg.Error as exc:
            self._away_until = time.monotonic() + AWAY_S
            log.warning(
                "shared embedding cache: %s failed (%s); this host embeds for itself for the next %.0f s",
                what,
                type(exc).__name__,
                AWAY_S,
            )
            return fallback
