"""Embeddings cached by (encoder identity, text hash), in memory and in a SQLite file on disk.

After a head-only retrain nothing needs a new forward pass: the worker embeds only texts it has
never seen, and a fine-tuned encoder has a new identity, so its cache starts empty.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from backend.labeling import TaskError
from backend.models.encoder import TextEncoder

log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, folder: Path, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.folder = folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"embeddings-{encoder.identity}.sqlite3"
        self._memory: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        with self._lock:
            missing = sorted({k for k in keys if k not in self._memory})
            if missing:
                self._load(missing)
            todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._memory}
        if todo:
            vectors = self.encoder.embed(list(todo.values()))
            with self._lock:
                rows = []
                for key, vec in zip(todo, vectors, strict=True):
                    self._memory[key] = vec
                    rows.append((key, vec.astype(np.float32).tobytes()))
                self._db.executemany("INSERT OR IGNORE INTO emb VALUES (?, ?)", rows)
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if not keys:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys])

    def missing(self, texts: Sequence[str]) -> int:
        """How many distinct ``texts`` have no embedding here yet (what a call to ``embed`` would encode)."""
        keys = {text_key(t) for t in texts}
        with self._lock:
            self._load(sorted(k for k in keys if k not in self._memory))
            return sum(1 for k in keys if k not in self._memory)

    def embed_readable(
        self, texts: Sequence[str], progress: bool = False, step: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        """(readable mask, embeddings): an input that cannot be read (an image that cannot be
        fetched) gets a zero row and False, so it fails alone; only its chunk is retried one by one."""
        out = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        readable = np.ones(len(texts), dtype=bool)
        for start in tqdm(range(0, len(texts), step), desc="embedding", unit="batch", disable=not progress):
            chunk = list(texts[start : start + step])
            try:
                out[start : start + len(chunk)] = self.embed(chunk)
            except TaskError:
                for i, text in enumerate(chunk, start):
                    try:
                        out[i] = self.embed([text])[0]
                    except TaskError as exc:
                        readable[i] = False
                        log.warning("input left out: %s", exc)
        return readable, out

    def _load(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk):
                self._memory[key] = np.frombuffer(blob, dtype=np.float32)
