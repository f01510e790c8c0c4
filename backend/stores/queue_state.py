"""What the queue sync remembers between runs, owned here: per task what its prediction shows and
where it ranks, the labels it switched away from, the stopping criteria's stop set and answers,
and the pool as Label Studio last listed it (so that a sync reads only what changed since). One
SQLite file beside the data (``queue_state_location``), the embedded default for one machine;
with ``HITL_DATABASE_URL`` the same tables in PostgreSQL, shared by every host."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.stores.labelstudio import answered
from backend.stores.postgres import Database, is_postgres

STATE_FILE = "sync-state.sqlite3"
STOP_SET = 2000  # reference tasks of the stabilising-predictions criterion (monitoring/stopping.py)
SCORED_VERSIONS = 5  # versions whose last strategy scores are kept for the report

# table: (columns with their types, primary key): both engines' schema and upserts come from here
TABLES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "written": (
        [
            ("project", "BIGINT"),
            ("task", "BIGINT"),
            ("version", "TEXT"),
            ("text_hash", "TEXT"),
            ("cluster", "INTEGER"),
            ("score", "DOUBLE PRECISION"),
            ("strategy_score", "DOUBLE PRECISION"),
            ("confidence", "DOUBLE PRECISION"),
            ("presentation", "TEXT"),
            ("leaning", "TEXT"),
        ],
        ["project", "task"],
    ),
    "scores": (
        [("project", "BIGINT"), ("version", "TEXT"), ("at", "DOUBLE PRECISION"), ("scores", "BYTEA")],
        ["project", "version"],
    ),
    "explored": (
        [("project", "BIGINT"), ("identity", "TEXT"), ("cluster", "INTEGER")],
        ["project", "identity", "cluster"],
    ),
    "labels": ([("project", "BIGINT"), ("label", "TEXT"), ("replaced_at", "DOUBLE PRECISION")], ["project", "label"]),
    "stop_set": ([("project", "BIGINT"), ("task", "BIGINT")], ["project", "task"]),
    "stop_answers": (
        [("project", "BIGINT"), ("seq", "INTEGER"), ("version", "TEXT"), ("task", "BIGINT"), ("answer", "TEXT")],
        ["project", "seq", "task"],
    ),
    "pool": (
        [("project", "BIGINT"), ("task", "BIGINT"), ("data", "TEXT"), ("prediction", "TEXT"), ("answered", "INTEGER")],
        ["project", "task"],
    ),
    "pool_mark": (
        [
            ("project", "BIGINT"),
            ("label", "TEXT"),
            ("since", "TEXT"),
            ("full_at", "DOUBLE PRECISION"),
            ("origin", "TEXT"),
        ],
        ["project"],
    ),
    "stop_uncertainty": (
        [("project", "BIGINT"), ("seq", "INTEGER"), ("version", "TEXT"), ("mean", "DOUBLE PRECISION")],
        ["project", "seq"],
    ),
}
PREFIX = "hitl_state_"  # the tables' names in a shared PostgreSQL database


def queue_state_location(data_dir: Path, database_url: str | None = None) -> Path | str:
    """The one place the state is named: the shared database when there is one, else the file."""
    return database_url if is_postgres(database_url) else Path(data_dir) / STATE_FILE


def queue_state_exists(location: Path | str) -> bool:
    return isinstance(location, str) or Path(location).exists()


class StateDb:
    """The statements below are written once, in SQLite's dialect; in PostgreSQL ``?`` becomes
    ``%s``, ``INSERT OR IGNORE``/``OR REPLACE`` become ``ON CONFLICT`` on the table's key, and
    tables carry PREFIX."""

    def __init__(self, location: Path | str) -> None:
        self.postgres = isinstance(location, str)
        if self.postgres:
            schema = [_create(name, PREFIX + name) for name in TABLES]
            self.pg = Database(str(location), schema)
            return
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lite = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.lite.execute("PRAGMA journal_mode=WAL")
        for name in TABLES:
            self.lite.execute(_create(name, name))
        columns = {row[1] for row in self.lite.execute("PRAGMA table_info(written)")}
        for column, kind in TABLES["written"][0]:  # columns added after the first release
            if column not in columns:
                self.lite.execute(f"ALTER TABLE written ADD COLUMN {column} {kind}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.postgres:
            return self.lite.execute(sql, params).fetchall()
        query = _postgres(sql)
        return self.pg.run(lambda conn: _rows(conn.execute(query, tuple(params))))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if not self.postgres:
            with self.lite:  # one transaction: autocommit would commit (and sync the file) once per row
                self.lite.execute("BEGIN")
                self.lite.executemany(sql, rows)
            return
        query = _postgres(sql)
        self.pg.run(lambda conn: conn.cursor().executemany(query, [tuple(r) for r in rows]))


def _create(name: str, table: str) -> str:
    columns, key = TABLES[name]
    body = ", ".join(f"{c} {t}" for c, t in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} ({body}, PRIMARY KEY ({', '.join(key)}))"


_INSERT = re.compile(r"^INSERT(?: OR (REPLACE|IGNORE))? INTO (\w+)(?: \(([^)]*)\))? VALUES", re.S)
_TABLE = re.compile(r"\b(FROM|INTO|UPDATE) (\w+)")


def _postgres(sql: str) -> str:
    match = _INSERT.match(sql)
    query = _TABLE.sub(lambda m: f"{m.group(1)} {PREFIX}{m.group(2)}" if m.group(2) in TABLES else m.group(0), sql)
    query = query.replace("INSERT OR REPLACE INTO", "INSERT INTO").replace("INSERT OR IGNORE INTO", "INSERT INTO")
    query = query.replace("?", "%s")
    if match and match.group(1):
        columns, key = TABLES[match.group(2)]
        named = [c.strip() for c in match.group(3).split(",")] if match.group(3) else [c for c, _ in columns]
        if match.group(1) == "IGNORE":
            query += f" ON CONFLICT ({', '.join(key)}) DO NOTHING"
        else:
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in named if c not in key)
            query += f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    return query


def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    return cursor.fetchall() if cursor.description else []


class SyncState:
    """What the last sync wrote per task: the version Label Studio sees, a hash of text and
    pre-annotation, cluster, queue rank (None past the head), the strategy's score and the
    confidence Label Studio shows (SQLite beside the data)."""

    def __init__(self, location: Path | str) -> None:
        self.db = StateDb(location)

    def get(self, project: int) -> dict[int, tuple[str, str, int, float | None, float | None, str | None, str | None]]:
        """Per task: (version, hash, cluster, rank, confidence shown, presentation, leaning)."""
        rows = self.db.execute(
            "SELECT task, version, text_hash, cluster, score, confidence, presentation, leaning FROM written "
            "WHERE project = ?",
            (project,),
        )
        return {task: tuple(rest) for task, *rest in rows}  # type: ignore[misc]

    def put(self, project: int, rows: list[tuple[Any, ...]]) -> None:
        """Rows of (task, version, content hash, cluster, rank, strategy score, confidence shown[,
        presentation, leaning]): what the task's prediction of ``version`` carries."""
        self.db.executemany(
            "INSERT OR REPLACE INTO written (project, task, version, text_hash, cluster, score, strategy_score, "
            "confidence, presentation, leaning) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(project, *row, *([None] * (9 - len(row)))) for row in rows],
        )

    def ranked(self, project: int) -> set[int]:
        """The tasks the last sync gave a queue rank (the head Label Studio serves in our order)."""
        return {
            int(t)
            for (t,) in self.db.execute("SELECT task FROM written WHERE project = ? AND score IS NOT NULL", (project,))
        }

    def save(self, project: int, rows: list[tuple[Any, ...]], previous: Mapping[int, tuple[Any, ...]]) -> int:
        """A sync's record (rows as ``put`` takes them, every task of the pool): the strategy's scores
        in one row, and the task rows that changed against ``previous`` (``get``'s), so that a sync
        after a head refresh writes its moved ranks, not every task of a 1M pool. Returns the rows
        written."""
        if rows:
            version = str(rows[0][1])
            scores = np.asarray([r[5] for r in rows], dtype=np.float32).tobytes()
            self.db.execute(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", (project, version, time.time(), scores)
            )
            self.db.execute(
                "DELETE FROM scores WHERE project = ? AND version NOT IN (SELECT version FROM scores WHERE project = ? "
                "ORDER BY at DESC LIMIT ?)",
                (project, project, SCORED_VERSIONS),
            )
        changed = [r for r in rows if previous.get(r[0]) != (r[1], r[2], r[3], r[4], *r[6:9])]
        self.put(project, changed)
        return len(changed)

    def replaced(self, project: int, label: str, at: float) -> None:
        """Label Studio stopped showing ``label`` at ``at`` (its predictions may still be open)."""
        self.db.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?)", (project, label, at))

    def replaced_at(self, project: int) -> dict[str, float]:
        """When each label this backend wrote stopped being the project's version."""
        rows = self.db.execute("SELECT label, replaced_at FROM labels WHERE project = ?", (project,))
        return {str(label): float(at) for label, at in rows}

    def prune(self, project: int, pool: set[int], identity: str = "") -> int:
        """Forget tasks that left the pool (annotated or deleted): the report plots the queue as it is.
        Their clusters (under the cluster model of encoder ``identity``) count as explored."""
        rows = self.db.execute("SELECT task, cluster FROM written WHERE project = ?", (project,))
        gone = [(task, cluster) for task, cluster in rows if task not in pool]
        self.db.executemany("DELETE FROM written WHERE project = ? AND task = ?", [(project, t) for t, _ in gone])
        self.db.executemany(
            "INSERT OR IGNORE INTO explored VALUES (?, ?, ?)",
            [(project, identity, c) for _, c in gone if c is not None],
        )
        return len(gone)

    def explored(self, project: int, identity: str) -> set[int]:
        """Clusters that at least one task left the pool from (annotated, as a rule)."""
        query = "SELECT cluster FROM explored WHERE project = ? AND identity = ?"
        return {int(c) for (c,) in self.db.execute(query, (project, identity))}

    def strategy_scores(self, project: int) -> dict[str, list[float]]:
        """Per model version, the scores the strategy gave the pool at the last sync (lower = more
        informative; for uncertainty strategies 1 - uncertainty): what the report plots."""
        kept = self.db.execute("SELECT version, scores FROM scores WHERE project = ? ORDER BY at", (project,))
        if kept:
            return {str(v): np.frombuffer(bytes(b), dtype=np.float32).astype(float).tolist() for v, b in kept}
        out: dict[str, list[float]] = {}  # a state written before the scores had a row of their own
        query = "SELECT version, strategy_score FROM written WHERE project = ? AND strategy_score IS NOT NULL"
        for version, score in self.db.execute(query, (project,)):
            out.setdefault(version, []).append(float(score))
        return out

    def confidences(self, project: int) -> dict[str, list[float]]:
        """Per model version, the calibrated confidences shown on the pool at the last sync."""
        out: dict[str, list[float]] = {}
        query = "SELECT version, confidence FROM written WHERE project = ? AND confidence IS NOT NULL"
        for version, confidence in self.db.execute(query, (project,)):
            out.setdefault(version, []).append(float(confidence))
        return out

    def mean_confidence(self, project: int) -> dict[str, tuple[float, int]]:
        """Per model version, the mean calibrated confidence shown on the pool at the last sync, and
        over how many tasks: calibrated, it estimates the pre-annotations' accuracy without labels."""
        query = (
            "SELECT version, AVG(confidence), COUNT(*) FROM written WHERE project = ? AND confidence IS NOT NULL "
            "GROUP BY version"
        )
        return {version: (float(mean), int(n)) for version, mean, n in self.db.execute(query, (project,))}


class StopRecords:
    """The stopping criteria's memory (``monitoring/stopping.py``): the stop set, and each version's answers on it."""

    def __init__(self, location: Path | str) -> None:
        self.db = StateDb(location)

    def stop_set(self, project: int, pool: Sequence[int], seed: int = 0) -> set[int]:
        """The project's reference tasks, drawn from ``pool`` at the first call and fixed after."""
        rows = {t for (t,) in self.db.execute("SELECT task FROM stop_set WHERE project = ?", (project,))}
        if rows or not len(pool):
            return rows
        chosen = np.random.default_rng(seed + project).permutation(np.asarray(pool))[:STOP_SET]
        self.db.executemany("INSERT OR IGNORE INTO stop_set VALUES (?, ?)", [(project, int(t)) for t in chosen])
        return {int(t) for t in chosen}

    def record(self, project: int, version: str, answers: Mapping[int, str], uncertainty: float | None = None) -> None:
        """The answers ``version`` gives the reference tasks still unlabeled (once per version), and
        their mean uncertainty."""
        rows = self.db.execute(
            "SELECT seq, version FROM stop_answers WHERE project = ? ORDER BY seq DESC LIMIT 1", (project,)
        )
        last = rows[0] if rows else None
        if last is not None and last[1] == version:
            return
        seq = 0 if last is None else last[0] + 1
        self.db.executemany(
            "INSERT INTO stop_answers VALUES (?, ?, ?, ?, ?)",
            [(project, seq, version, t, a) for t, a in answers.items()],
        )
        if uncertainty is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO stop_uncertainty VALUES (?, ?, ?, ?)",
                (project, seq, version, float(uncertainty)),
            )

    def answers(self, project: int) -> list[tuple[str, dict[int, str]]]:
        """Each recorded version's answers on the stop set, oldest first."""
        versions: dict[int, tuple[str, dict[int, str]]] = {}
        query = "SELECT seq, version, task, answer FROM stop_answers WHERE project = ? ORDER BY seq"
        for seq, version, task, answer in self.db.execute(query, (project,)):
            versions.setdefault(seq, (version, {}))[1][task] = answer
        return [versions[s] for s in sorted(versions)]

    def last_uncertainty(self, project: int) -> float | None:
        """The last recorded version's mean uncertainty on the stop set."""
        rows = self.db.execute(
            "SELECT mean FROM stop_uncertainty WHERE project = ? ORDER BY seq DESC LIMIT 1", (project,)
        )
        return float(rows[0][0]) if rows else None


@dataclass(frozen=True)
class PoolMark:
    """How far the pool snapshot is known to agree with Label Studio: ``label``'s predictions are
    kept, every change to a task after ``since`` (Label Studio's clock, its filter format) is yet
    to be read, and the whole pool was last read at ``full_at`` (our clock), from the project
    ``origin`` names (Label Studio's URL and the project's creation time: a project id reused by
    another Label Studio, or after a reset, is another pool)."""

    label: str
    since: str
    full_at: float
    origin: str = ""


class PoolSnapshot:
    """The unlabeled pool as the last sync read it: per task its data and its prediction of the
    mark's label. A sync reads only the tasks Label Studio changed since the mark and applies them
    here; without a mark (none yet, or a sync that stopped while writing) the next sync reads all."""

    def __init__(self, location: Path | str) -> None:
        self.db = StateDb(location)

    def mark(self, project: int) -> PoolMark | None:
        rows = self.db.execute("SELECT label, since, full_at, origin FROM pool_mark WHERE project = ?", (project,))
        return PoolMark(str(rows[0][0]), str(rows[0][1]), float(rows[0][2]), str(rows[0][3])) if rows else None

    def set_mark(self, project: int, mark: PoolMark) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pool_mark VALUES (?, ?, ?, ?, ?)",
            (project, mark.label, mark.since, mark.full_at, mark.origin),
        )

    def unsettle(self, project: int) -> None:
        """Drop the mark: what follows may change Label Studio without this snapshot knowing it yet."""
        self.db.execute("DELETE FROM pool_mark WHERE project = ?", (project,))

    def tasks(self, project: int) -> list[dict[str, Any]]:
        """The snapshot's tasks in task-id order (Label Studio's own listing order), shaped as Label
        Studio lists them: id, data, the kept prediction, and an annotation where the task's
        annotation counter lagged its annotation (listed as unlabeled, yet answered)."""
        rows = self.db.execute(
            "SELECT task, data, prediction, answered FROM pool WHERE project = ? ORDER BY task", (project,)
        )
        # one JSON array per column: a million json.loads calls cost more than their parsing
        data = json.loads("[" + ",".join(row[1] for row in rows) + "]")
        predictions = json.loads("[" + ",".join(row[2] or "null" for row in rows) + "]")
        annotated: list[dict[str, Any]] = [{"was_cancelled": False}]
        return [
            {
                "id": row[0],
                "data": d,
                "predictions": [p] if p else [],
                "annotations": annotated if row[3] else [],
            }
            for row, d, p in zip(rows, data, predictions, strict=True)
        ]

    def replace(self, project: int, tasks: Iterable[dict[str, Any]], label: str) -> None:
        """The whole pool, as a full read listed it."""
        self.db.execute("DELETE FROM pool WHERE project = ?", (project,))
        self.change(project, tasks, (), label)

    def change(self, project: int, tasks: Iterable[dict[str, Any]], gone: Iterable[int], label: str) -> None:
        """Tasks read again (their data and ``label``'s prediction replace what was kept) and tasks
        that left the pool."""
        self.db.executemany("DELETE FROM pool WHERE project = ? AND task = ?", [(project, int(t)) for t in gone])
        self.db.executemany(
            "INSERT OR REPLACE INTO pool VALUES (?, ?, ?, ?, ?)", [_pool_row(project, t, label) for t in tasks]
        )

    def wrote(self, project: int, predictions: Sequence[dict[str, Any]], data: Sequence[tuple[int, dict]]) -> None:
        """What a sync wrote to Label Studio itself: new predictions (a bulk import leaves a task's
        ``updated_at`` as it was, so no later read would see them) and task data."""
        dumps = json.dumps
        self.db.executemany(
            "UPDATE pool SET prediction = ? WHERE project = ? AND task = ?",
            [(dumps(_kept(p)), project, int(p["task"])) for p in predictions],
        )
        self.db.executemany(
            "UPDATE pool SET data = ? WHERE project = ? AND task = ?",
            [(dumps(d), project, int(t)) for t, d in data],
        )

    def size(self, project: int) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM pool WHERE project = ?", (project,))[0][0])

    def forget(self, project: int) -> None:
        self.unsettle(project)
        self.db.execute("DELETE FROM pool WHERE project = ?", (project,))


def _kept(prediction: dict[str, Any]) -> dict[str, Any]:
    """What the plan reads of a prediction (``query/plan.py:carried``)."""
    return {k: prediction.get(k) for k in ("model_version", "score", "result")}


def _pool_row(project: int, task: dict[str, Any], label: str) -> tuple[Any, ...]:
    ours = next((p for p in task.get("predictions") or [] if p.get("model_version") == label), None)
    prediction = json.dumps(_kept(ours)) if ours else None
    return (project, int(task["id"]), json.dumps(task.get("data") or {}), prediction, int(answered(task)))
