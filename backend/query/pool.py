"""The unlabeled pool as the sync sees it: read from Label Studio page by page, each task's text,
data and predictions, embedded through the embedding cache. A task that cannot be read (an empty
text, an image that cannot be fetched) is counted by reason and left out; the rest are scored."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from backend.labeling import TaskError, TaskSpec, task_text
from backend.models.embedding_cache import EmbeddingCache
from backend.stores.labelstudio import LabelStudioClient


@dataclass
class Pool:
    """The readable unlabeled tasks, aligned: ``ids[i]``, ``texts[i]``, ``data[i]``, ``embeddings[i]``."""

    ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[int, dict[Any, dict[str, Any]]] = field(default_factory=dict)  # per task, per model version
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    size: int = 0  # unlabeled tasks listed, readable or not
    skipped: Counter[str] = field(default_factory=Counter)  # why tasks were left out, counted

    @property
    def task_ids(self) -> np.ndarray:
        return np.array(self.ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)


def read_pool(
    ls: LabelStudioClient, project_id: int, spec: TaskSpec, cache: EmbeddingCache, max_chars: int, progress: bool
) -> Pool:
    """Every unlabeled task of the project, embedded (a lookup for texts seen before)."""
    pool = Pool()
    for task in tqdm(ls.unlabeled_tasks(project_id), desc="reading tasks", unit="task", disable=not progress):
        pool.size += 1
        try:
            pool.texts.append(task_text(task, spec, max_chars))
        except TaskError as exc:
            pool.skipped[str(exc).split(" (")[0]] += 1
            continue
        pool.ids.append(int(task["id"]))
        pool.data.append(dict(task.get("data") or {}))
        pool.predictions[int(task["id"])] = {p.get("model_version"): p for p in task.get("predictions") or []}
    if not pool.ids:
        return pool
    readable, pool.embeddings = cache.embed_readable(pool.texts, progress)
    if not readable.all():  # images that could not be fetched: counted, left out of this sync
        pool.skipped["unreadable image"] += int((~readable).sum())
        keep = np.flatnonzero(readable)
        pool.ids = [pool.ids[i] for i in keep]
        pool.texts = [pool.texts[i] for i in keep]
        pool.data = [pool.data[i] for i in keep]
        pool.embeddings = pool.embeddings[readable]
    return pool
