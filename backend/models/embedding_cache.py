"""Embeddings cached by (encoder identity, text hash), in memory and in a SQLite file on disk.

After a head-only retrain nothing needs a new forward pass: the worker embeds only texts it has
never seen, and a fine-tuned encoder has a new identity, so its cache starts empty.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from backend.labeling import TaskError
from backend.models.encoder import TextEncoder
from backend.stores.vectors import vector_store

log = logging.getLogger(__name__)


MEMO_CHARS = 512  # texts up to this long keep their key in memory: at most ~0.6 KB beside a 1.5 KB vector


def text_key(text: str) -> str:
    """A text's key. A short text's is memoised: a sync of a large pool asks for every task's, every
    time, and a str's own hash finds it again in a fraction of a SHA-256; a long text is not kept."""
    return _memo_key(text) if len(text) <= MEMO_CHARS else _key(text)


@functools.lru_cache(maxsize=1 << 21)
def _memo_key(text: str) -> str:
    return _key(text)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class EmbeddingCache:
    """In memory, the vectors are rows of one matrix (a pool's lookup is one gather, not a million
    small arrays stacked)."""

    def __init__(self, folder: Path, encoder: TextEncoder, database_url: str | None = None) -> None:
        """``database_url``: a PostgreSQL URL shares the vectors with every host (``stores/vectors.py``);
        otherwise they are kept in a SQLite file under ``folder``."""
        self.encoder = encoder
        self.folder = folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.store = vector_store(folder, encoder.identity, database_url)
        self.path = self.store.path  # None when shared
        self._row: dict[str, int] = {}  # key -> row of _vectors
        self._vectors = np.zeros((0, encoder.dim), dtype=np.float32)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo: dict[str, str] = {}
        with self._lock:
            rows = [self._row.get(k) for k in keys]
            if None in rows:  # read what another process embedded, then embed the rest
                self._load(sorted({k for k, row in zip(keys, rows, strict=True) if row is None}))
                todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._row}
        if todo:
            vectors = np.asarray(self.encoder.embed(list(todo.values())), dtype=np.float32)
            with self._lock:
                names = list(todo)
                fresh = [i for i, k in enumerate(names) if k not in self._row]  # another thread may have some
                self._remember([names[i] for i in fresh], vectors[fresh])
            self.store.write([(key, vec.tobytes()) for key, vec in zip(names, vectors, strict=True)])
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if not keys:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        with self._lock:
            if None in rows:
                rows = [self._row[k] for k in keys]
            return self._vectors[rows]

    def forget(self) -> None:
        """Drop what is held in memory (the disk cache stays): as a new process starts."""
        with self._lock:
            self._row.clear()
            self._vectors = np.zeros((0, self.encoder.dim), dtype=np.float32)

    def missing(self, texts: Sequence[str]) -> int:
        """How many distinct ``texts`` have no embedding here yet (what a call to ``embed`` would encode)."""
        keys = {text_key(t) for t in texts}
        with self._lock:
            self._load(sorted(k for k in keys if k not in self._row))
            return sum(1 for k in keys if k not in self._row)

    def embed_readable(
        self, texts: Sequence[str], progress: bool = False, step: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        """(readable mask, embeddings): an input that cannot be read (an image that cannot be
        fetched) gets a zero row and False, so it fails alone; only its chunk is retried one by one."""
        with self._lock:
            rows = [self._row.get(text_key(t)) for t in texts]
            if texts and None not in rows:  # all in memory (the next sync of a pool): one gather, no chunks
                self.hits += len(rows)
                return np.ones(len(texts), dtype=bool), self._vectors[rows]
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

    def _load(self, keys: list[str], step: int = 10_000) -> None:
        for start in range(0, len(keys), step):  # a fresh worker reads a whole pool: a slice at a time
            found = self.store.read(keys[start : start + step])
            if found:
                vectors = np.frombuffer(b"".join(blob for _, blob in found), dtype=np.float32)
                self._remember([key for key, _ in found], vectors.reshape(len(found), -1))

    def _remember(self, keys: list[str], vectors: np.ndarray) -> None:
        """Append rows (the lock held), growing the matrix by doubling."""
        if not keys:
            return
        start = len(self._row)
        if start + len(keys) > len(self._vectors):
            grown = np.zeros((max(2 * len(self._vectors), start + len(keys), 1024), vectors.shape[1]), dtype=np.float32)
            grown[:start] = self._vectors[:start]
            self._vectors = grown
        self._vectors[start : start + len(keys)] = vectors
        self._row.update(zip(keys, range(start, start + len(keys)), strict=True))
