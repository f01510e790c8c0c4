"""Work only one holder may do at a time (a project's sync): across every host through a
PostgreSQL advisory lock when HITL_DATABASE_URL is set, else on this machine through a file lock.
Either lock dies with its holder (a killed process closes its connection or its file)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from typing import Any

from backend.stores.postgres import is_postgres, lock_key


@contextlib.contextmanager
def exclusive(settings: Any, name: str) -> Iterator[None]:
    """Wait for ``name``'s lock and hold it for the block."""
    url = getattr(settings, "database_url", None)
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(f"hitl:{name}"),))
            yield  # the lock goes with the connection, on any exit
        return
    path = settings.data_dir / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
