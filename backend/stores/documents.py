"""Small JSON documents, one per project and kind, that the sync keeps between runs (a drift
reference, cluster centroids): files under HITL_DATA_DIR/<kind>/ on one machine, rows in the shared
PostgreSQL database with HITL_DATABASE_URL, so every host's sync reads the same ones."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from backend.stores.postgres import Database, is_postgres

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS hitl_documents (kind TEXT NOT NULL, project BIGINT NOT NULL, value TEXT NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, project))"
]


class Documents:
    def __init__(self, location: Path | str, kind: str) -> None:
        self.kind = kind
        self.db = Database(str(location), SCHEMA) if isinstance(location, str) else None
        self.folder = None if self.db else Path(location) / kind

    @classmethod
    def for_settings(cls, settings: Any, kind: str) -> Documents:
        url = getattr(settings, "database_url", None)
        return cls(url if is_postgres(url) else Path(settings.data_dir), kind)

    def read(self, project: int) -> dict[str, Any] | None:
        """The project's document; None when there is none yet, or it cannot be read (made anew)."""
        if self.db is not None:
            row = self.db.run(
                lambda conn: conn.execute(
                    "SELECT value FROM hitl_documents WHERE kind = %s AND project = %s", (self.kind, project)
                ).fetchone()
            )
            text = row[0] if row else None
        else:
            try:
                text = (self.folder / f"{project}.json").read_text()
            except OSError:
                text = None
        try:
            value = json.loads(text) if text else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def write(self, project: int, value: dict[str, Any]) -> None:
        text = json.dumps(value)
        if self.db is not None:
            self.db.run(
                lambda conn: conn.execute(
                    "INSERT INTO hitl_documents (kind, project, value, at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (kind, project) DO UPDATE SET value = EXCLUDED.value, at = EXCLUDED.at",
                    (self.kind, project, text, time.time()),
                )
            )
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{project}.json.{os.getpid()}"
        tmp.write_text(text)
        tmp.replace(self.folder / f"{project}.json")
