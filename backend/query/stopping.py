"""When more labels stop paying: the stabilising-predictions criterion.

A fixed *stop set* of unlabeled tasks (up to ``STOP_SET``, drawn once per project at its first
sync) is predicted by every version the sync writes. Cohen's kappa between consecutive versions'
answers on it measures how much the model still changes its mind; when the last ``WINDOW``
kappas are all at least ``THRESHOLD``, predictions have stabilised and more labels are unlikely
to change what annotators see (Bloodgood and Vijay-Shanker, 2009). Answers are compared whole
(a choice, a set of choices, or a task's entities), so the criterion is the same for every task
kind. The state lives in SQLite beside the sync's.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

STOP_SET = 2000
WINDOW = 3
THRESHOLD = 0.99


@dataclass(frozen=True)
class StoppingStatus:
    kappas: list[tuple[str, float, int]]  # (version, kappa with the version before it, tasks compared)
    stable: bool

    @property
    def message(self) -> str:
        if not self.kappas:
            return "stopping: not enough versions yet to tell whether predictions are stabilising"
        recent = self.kappas[-WINDOW:]
        changed = [1 - k for _, k, _ in recent]
        verdict = ("predictions have stabilised: more labels are unlikely to change what annotators see"
                   if self.stable else "predictions are still changing: labels still pay")  # fmt: skip
        return (f"stopping: kappa between consecutive versions on {recent[-1][2]} reference tasks "
                f"{', '.join(f'{k:.3f}' for _, k, _ in recent)} (threshold {THRESHOLD}, last {WINDOW}; "
                f"up to {max(changed):.1%} disagreement); {verdict}")  # fmt: skip


def answer_key(result: Any) -> str:
    """A task's whole answer as one category (order-independent JSON)."""
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()[:16]


class StoppingState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS stop_set (project INTEGER, task INTEGER, PRIMARY KEY (project, task))"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS stop_answers (project INTEGER, seq INTEGER, version TEXT, task INTEGER, "
            "answer TEXT, PRIMARY KEY (project, seq, task))"
        )

    def stop_set(self, project: int, pool: Sequence[int], seed: int = 0) -> set[int]:
        """The project's reference tasks, drawn from ``pool`` at the first call and fixed after."""
        rows = {t for (t,) in self.db.execute("SELECT task FROM stop_set WHERE project = ?", (project,))}
        if rows or not len(pool):
            return rows
        chosen = np.random.default_rng(seed + project).permutation(np.asarray(pool))[:STOP_SET]
        self.db.executemany("INSERT OR IGNORE INTO stop_set VALUES (?, ?)", [(project, int(t)) for t in chosen])
        return {int(t) for t in chosen}

    def record(self, project: int, version: str, answers: Mapping[int, str]) -> None:
        """The answers ``version`` gives the reference tasks still unlabeled (once per version)."""
        last = self.db.execute("SELECT seq, version FROM stop_answers WHERE project = ? ORDER BY seq DESC LIMIT 1",
                               (project,)).fetchone()  # fmt: skip
        if last is not None and last[1] == version:
            return
        seq = 0 if last is None else last[0] + 1
        self.db.executemany("INSERT INTO stop_answers VALUES (?, ?, ?, ?, ?)",
                            [(project, seq, version, t, a) for t, a in answers.items()])  # fmt: skip

    def status(self, project: int) -> StoppingStatus:
        versions: dict[int, tuple[str, dict[int, str]]] = {}
        query = "SELECT seq, version, task, answer FROM stop_answers WHERE project = ? ORDER BY seq"
        for seq, version, task, answer in self.db.execute(query, (project,)):
            versions.setdefault(seq, (version, {}))[1][task] = answer
        ordered = [versions[s] for s in sorted(versions)]
        kappas = []
        for (_, before), (version, after) in pairwise(ordered):
            common = sorted(set(before) & set(after))
            if len(common) < 2:
                continue
            a, b = [before[t] for t in common], [after[t] for t in common]
            kappa = 1.0 if a == b else float(cohen_kappa_score(a, b))
            kappas.append((version, round(0.0 if np.isnan(kappa) else kappa, 4), len(common)))
        stable = len(kappas) >= WINDOW and all(k >= THRESHOLD for _, k, _ in kappas[-WINDOW:])
        return StoppingStatus(kappas, stable)
