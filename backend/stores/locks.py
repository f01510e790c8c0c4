"""Work only one holder may do at a time (a project's sync): across every host through a
PostgreSQL advisory lock when HITL_DATABASE_URL is set, else on this machine through a file lock.
Either lock dies with its holder (a killed process closes its connection or its file)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from typing import Any

from backend.stores.postgres import is_postgres, lock_key


@contextlib.contextmanager
def exclusive(settings: Any, name: str, or_else: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold ``name``'s lock for the block, waiting for it; with ``or_else``, never wait: where another
    holds it, call ``or_else`` (to leave word for the holder), try once more (a holder that let go
    meanwhile would never read that word) and yield False if it is still held."""
    url = getattr(settings, "database_url", None)
    if is_postgres(url):
        import psycopg

        key = lock_key(f"hitl:{name}")
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            if or_else is None:
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
                yield True  # the lock goes with the connection, on any exit
                return

            def take() -> bool:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                return bool(row and row[0])

            yield _taken(take, or_else)
        return
    path = settings.data_dir / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        if or_else is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield True
            return

        def take() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        yield _taken(take, or_else)


def _taken(take: Callable[[], bool], or_else: Callable[[], None]) -> bool:
    if take():
        return True
    or_else()
    return take()
