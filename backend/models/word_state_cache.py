"""Frozen word states for NER, cached on disk by (encoder identity, text).

The NER counterpart of ``embedding_cache.py``: after the first pass over a text, a head retrain,
the gate's evaluation and the sync read its word states instead of running the encoder, so a NER
correction retrains in the time of a matrix product. States are stored as float16 (the head is
linear; the rounding is far below what bfloat16 inference already does) and read from SQLite on
demand, not held in memory, since a pool of sentences has many words.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from backend.models.embedding_cache import text_key


class WordStateCache:
    def __init__(self, folder: Path, identity: str, dim: int) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.path = folder / f"word-states-{identity}.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS states (key TEXT PRIMARY KEY, words INTEGER, vec BLOB)")
        self.hits = 0
        self.misses = 0

    def get(self, texts: Sequence[str], compute: Callable[[list[int]], list[np.ndarray]]) -> list[np.ndarray]:
        """States per text (words, dim); ``compute(indices)`` runs the encoder for the texts not cached."""
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            unique = sorted(set(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, words, blob in self._db.execute(
                    f"SELECT key, words, vec FROM states WHERE key IN ({marks})", chunk
                ):
                    found[key] = np.frombuffer(blob, dtype=np.float16).reshape(words, self.dim)
        missing = [i for i, key in enumerate(keys) if key not in found]
        if missing:
            fresh = compute(missing)
            rows = []
            for i, states in zip(missing, fresh, strict=True):
                stored = np.ascontiguousarray(states, dtype=np.float16)
                found[keys[i]] = stored
                rows.append((keys[i], len(stored), stored.tobytes()))
            with self._lock:
                self._db.executemany("INSERT OR IGNORE INTO states VALUES (?, ?, ?)", rows)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return [found[key].astype(np.float32) for key in keys]
