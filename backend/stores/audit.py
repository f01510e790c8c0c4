"""Append-only audit trail: every correction, every webhook event, every model version and its gate.

SQLite under HITL_DATA_DIR by default; PostgreSQL when HITL_AUDIT_DB_URL is a ``postgresql://``
URL. Rows are only ever inserted; re-recording the same annotation revision is a no-op, so a
retrain that pulls everything again does not duplicate history.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from backend.stores.audit_spool import AuditSpool
from backend.stores.postgres import SCHEMA_LOCK, lock_key

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS corrections (
        project_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        annotation_id INTEGER NOT NULL,
        annotator TEXT,
        annotated_at TEXT NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL,
        prediction_model_version TEXT,
        prediction_score DOUBLE PRECISION,
        prediction_result TEXT,
        final_result TEXT NOT NULL,
        changed BOOLEAN,
        rationale TEXT,
        PRIMARY KEY (annotation_id, annotated_at)
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        received_at DOUBLE PRECISION NOT NULL,
        action TEXT NOT NULL,
        project_id INTEGER,
        annotation_ids TEXT,
        outcome TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS model_versions (
        project_id INTEGER NOT NULL,
        version TEXT NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        published BOOLEAN NOT NULL,
        examples INTEGER,
        fingerprint TEXT,
        metrics TEXT,
        gate TEXT,
        PRIMARY KEY (project_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS routing_decisions (
        project_id INTEGER NOT NULL,
        model_version TEXT NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL,
        threshold DOUBLE PRECISION,
        reviewed INTEGER NOT NULL,
        confirmed INTEGER NOT NULL,
        low DOUBLE PRECISION,
        high DOUBLE PRECISION,
        decision TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS drift_checks (
        project_id INTEGER NOT NULL,
        model_version TEXT,
        recorded_at DOUBLE PRECISION NOT NULL,
        size INTEGER NOT NULL,
        p_outputs DOUBLE PRECISION,
        p_embeddings DOUBLE PRECISION,
        alarm BOOLEAN NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS label_checks (
        project_id INTEGER NOT NULL,
        version TEXT,
        recorded_at DOUBLE PRECISION NOT NULL,
        annotated INTEGER NOT NULL,
        suspects TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS annotator_checks (
        project_id INTEGER NOT NULL,
        version TEXT,
        recorded_at DOUBLE PRECISION NOT NULL,
        summary TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS label_flags (
        project_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        annotated_at TEXT NOT NULL,
        flagged_at DOUBLE PRECISION NOT NULL,
        version TEXT,
        given TEXT NOT NULL,
        suggested TEXT NOT NULL,
        quality DOUBLE PRECISION,
        reason TEXT,
        PRIMARY KEY (project_id, task_id, annotated_at)
    )""",
    """CREATE TABLE IF NOT EXISTS label_verdicts (
        project_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        annotated_at TEXT NOT NULL,
        version TEXT,
        verdict TEXT NOT NULL,
        given TEXT NOT NULL,
        suggested TEXT NOT NULL,
        final TEXT,
        reviewer TEXT,
        decided_at TEXT,
        quality DOUBLE PRECISION,
        recorded_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project_id, task_id, annotated_at)
    )""",
    """CREATE TABLE IF NOT EXISTS proposals (
        project_id INTEGER NOT NULL,
        proposal_id INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        model_version TEXT,
        source_task INTEGER NOT NULL,
        wrong_label TEXT NOT NULL,
        label TEXT NOT NULL,
        threshold DOUBLE PRECISION,
        task_ids TEXT NOT NULL,
        PRIMARY KEY (project_id, proposal_id)
    )""",
    """CREATE TABLE IF NOT EXISTS proposal_outcomes (
        project_id INTEGER NOT NULL,
        proposal_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        reviewer TEXT,
        decided_at TEXT,
        recorded_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project_id, proposal_id, task_id)
    )""",
    """CREATE TABLE IF NOT EXISTS task_fields (
        project_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        field TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (project_id, task_id, field)
    )""",
    # what each prediction the sync wrote showed (pre-selected, leaning only, blind) and the model's answer,
    # shown or not: a blind audit sample's outcome is the annotator's label against that answer
    """CREATE TABLE IF NOT EXISTS shown_predictions (
        project_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        model_version TEXT NOT NULL,
        presentation TEXT NOT NULL,
        answer TEXT NOT NULL,
        score DOUBLE PRECISION,
        recorded_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project_id, task_id, model_version)
    )""",
]


INPUTS_MARK = "(/predict inputs)"  # marks a drift check of /predict's inputs in drift_checks.model_version


def is_inputs_check(row: dict[str, Any]) -> bool:
    return str(row.get("model_version") or "").endswith(INPUTS_MARK)


@dataclass(frozen=True)
class Correction:
    project_id: int
    task_id: int
    annotation_id: int
    annotator: str | None
    annotated_at: str
    prediction_model_version: str | None
    prediction_score: float | None
    prediction_result: list[Any] | None
    final_result: list[Any]
    changed: bool | None
    rationale: str | None


RETRY_S = 5.0  # how often a process with writes waiting tries the database again


class AuditStore:
    """The audit trail. With PostgreSQL and a ``spool``, the database being away (at start or later)
    fails no write: each waits on disk and is replayed, in order, once the database answers."""

    def __init__(self, url: str, spool: AuditSpool | None = None) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._local = threading.local()
        self._spool = spool if self.postgres else None
        self._schema_ready = False
        self._down_since: float | None = None
        self._retrying = threading.Lock()
        try:
            self._run(lambda conn: None)  # connects, creates the schema, replays what waits
        except Exception as exc:
            if not self._unreachable(exc):
                raise
            log.warning(
                "audit store %s unreachable at start (%s): writes wait in %s and are replayed when it is back",
                self.describe(url),
                type(exc).__name__,
                self._spool.path if self._spool else "?",
            )
            self._retry_later()

    @staticmethod
    def describe(url: str) -> str:
        """The store's URL or path as it may be shown: a password never is."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.password is None:
            return url
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()

    @classmethod
    def from_settings(cls, settings: Any) -> AuditStore:
        url = settings.audit_db_url or getattr(settings, "database_url", None)
        if url:
            max_bytes = int(settings.audit_spool_max_mb * 2**20)
            return cls(url, AuditSpool(Path(settings.data_dir) / "audit-spool.jsonl", max_bytes))
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        return cls(str(Path(settings.data_dir).resolve() / "audit.sqlite3"))

    # connections -----------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url, autocommit=False, connect_timeout=10)
        conn = sqlite3.connect(self.url, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            if not self._schema_ready:  # once per process, and one process (of any host) at a time:
                with _Tx(conn, self.postgres) as tx:  # concurrent IF NOT EXISTS can still collide in PostgreSQL
                    if self.postgres:
                        tx.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(SCHEMA_LOCK),))
                    for statement in SCHEMA:
                        tx.execute(statement)
                self._schema_ready = True
        return _Tx(conn, self.postgres)

    def _run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in one transaction. A connection PostgreSQL dropped (a restart, a
        failover, ``pg_terminate_backend``) is replaced and the work retried once: every write here
        is idempotent or was rolled back, so the retry neither loses nor duplicates a row."""
        for attempt in (1, 2):
            connecting = getattr(self._local, "conn", None) is None
            try:
                with self._conn() as conn:
                    result = work(conn)
            except Exception as exc:
                if connecting and self._unreachable(exc):  # no connection to begin with: no point asking twice
                    self._down_since = self._down_since or time.time()
                    self._forget_connection()
                    raise
                if attempt == 2 or not self._connection_lost(exc):
                    if self._unreachable(exc):
                        self._down_since = self._down_since or time.time()
                    raise
                log.warning("audit store: the database connection was lost (%s); reconnecting", type(exc).__name__)
                self._forget_connection()
                continue
            if self._down_since is not None:
                log.warning("audit store: the database answers again")
                self._down_since = None
            if self._spool is not None and self._spool.pending():
                try:
                    self._replay()
                except Exception as exc:  # away again: they wait on; this call's own work is done
                    log.warning("audit store: replay stopped (%s); the rest waits", type(exc).__name__)
                    self._retry_later()
            return result
        raise AssertionError("unreachable")

    def _unreachable(self, exc: Exception) -> bool:
        """The database cannot be reached or used now (down, restarting, refusing): not a bug."""
        if not self.postgres:
            return False
        import psycopg

        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)

    # the spool -------------------------------------------------------------------------------
    def _write(self, statement: str, rows: list[Any]) -> None:
        """Insert ``rows``; with the database away, they wait in the spool."""
        sql = self._sql(statement)
        if self._waiting():  # behind the writes already waiting, in order
            return self._spooled(sql, rows)
        try:
            self._run(lambda conn: conn.cursor().executemany(sql, rows))
        except Exception as exc:
            if self._spool is None or not self._unreachable(exc):
                raise
            self._spooled(sql, rows)

    def _waiting(self) -> bool:
        return self._spool is not None and (self._down_since is not None or self._spool.pending() > 0)

    def _spooled(self, sql: str, rows: list[Any]) -> None:
        assert self._spool is not None
        self._spool.append(sql, [list(r) for r in rows])
        self._retry_later()

    def _replay(self) -> None:
        assert self._spool is not None

        def execute(sql: str, rows: list[Any]) -> None:
            try:
                with self._conn() as conn:
                    conn.cursor().executemany(sql, rows)
            except Exception as exc:
                if self._unreachable(exc):
                    raise
                log.error("audit store: a waiting write was refused (%s); kept in %s", exc, self._spool.rejected)
                self._spool.reject(sql, rows)

        done = self._spool.replay(execute)
        if done:
            log.warning("audit store: %d waiting write(s) replayed from %s", done, self._spool.path)

    def _retry_later(self) -> None:
        """One thread per store tries the database every RETRY_S until nothing waits any more."""
        if self._spool is None or not self._retrying.acquire(blocking=False):
            return

        def retry() -> None:
            try:
                while True:
                    time.sleep(RETRY_S)
                    with contextlib.suppress(Exception):
                        self._run(lambda conn: None)  # replays on success
                        if not self._spool or not self._spool.pending():
                            return
            finally:
                self._retrying.release()

        threading.Thread(target=retry, name="audit-spool-replay", daemon=True).start()

    def degraded(self) -> str | None:
        """What is degraded, in words without the URL (``/health`` is open): None when nothing is."""
        waiting = self._spool.pending() if self._spool else 0
        if self._down_since is None and not waiting:
            return None
        return f"audit store: database unreachable; {waiting} write(s) wait on disk and are replayed when it is back"

    def _connection_lost(self, exc: Exception) -> bool:
        if not self.postgres:
            return False
        import psycopg

        conn = getattr(self._local, "conn", None)
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or bool(conn and conn.closed)

    def _forget_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    # writing ---------------------------------------------------------------------------------
    def record_corrections(self, corrections: Iterable[Correction]) -> int:
        rows = [
            (
                c.project_id,
                c.task_id,
                c.annotation_id,
                c.annotator,
                c.annotated_at,
                time.time(),
                c.prediction_model_version,
                c.prediction_score,
                _dump(c.prediction_result),
                _dump(c.final_result),
                c.changed,
                c.rationale,
            )
            for c in corrections
        ]
        if not rows:
            return 0
        statement = self._sql(
            "INSERT INTO corrections VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (annotation_id, annotated_at) DO NOTHING"
        )

        def insert(conn: Any) -> int:
            before = self._count(conn, "corrections")
            conn.cursor().executemany(statement, rows)
            return self._count(conn, "corrections") - before

        if self._waiting():
            self._spooled(statement, rows)
            return len(rows)  # at most this many are new: the replay skips those already recorded
        try:
            return self._run(insert)
        except Exception as exc:
            if self._spool is None or not self._unreachable(exc):
                raise
            self._spooled(statement, rows)
            return len(rows)

    def record_shown(self, project_id: int, rows: Iterable[tuple[int, str, str, list[str], float]]) -> None:
        """Rows of (task, model version, presentation, the model's answer, score) for predictions about
        to be written; the sync writes one only where Label Studio holds none of that version, so the
        latest record is what is shown (an import that failed is written again, perhaps otherwise)."""
        now = time.time()
        data = [
            (project_id, task, version, presentation, json.dumps(answer), score, now)
            for task, version, presentation, answer, score in rows
        ]
        if data:
            statement = (
                "INSERT INTO shown_predictions VALUES (?,?,?,?,?,?,?) ON CONFLICT (project_id, task_id, model_version) "
                "DO UPDATE SET presentation = excluded.presentation, answer = excluded.answer, score = excluded.score, "
                "recorded_at = excluded.recorded_at"
            )
            self._write(statement, data)

    def shown(self, project_id: int) -> dict[tuple[int, str], dict[str, Any]]:
        """(task, model version) → how its prediction was shown and the model's answer in it."""
        rows = self._select("SELECT * FROM shown_predictions WHERE project_id = ?", project_id)
        return {(int(r["task_id"]), str(r["model_version"])): {**r, "answer": json.loads(r["answer"])} for r in rows}

    def record_event(self, action: str, project_id: int | None, annotation_ids: Sequence[int], outcome: str) -> None:
        row = (time.time(), action, project_id, json.dumps(list(annotation_ids)), outcome)
        self._write("INSERT INTO events VALUES (?,?,?,?,?)", [row])

    def record_version(
        self,
        project_id: int,
        version: str,
        kind: str,
        published: bool,
        examples: int,
        fingerprint: str,
        metrics: dict[str, Any],
        gate: dict[str, Any],
    ) -> None:
        row = (project_id, version, time.time(), kind, published, examples, fingerprint, _dump(metrics), _dump(gate))
        self._write("INSERT INTO model_versions VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", [row])

    def record_label_check(
        self,
        project_id: int,
        version: str | None,
        annotated: int,
        suspects: list[dict],
        annotators: dict[str, Any] | None = None,
    ) -> None:
        """One label-error check of a project's annotations (``monitoring/label_errors.py``), and where
        tasks have several annotators, their agreement and each annotator's quality."""
        now = time.time()
        row = (project_id, version, now, annotated, json.dumps(suspects))
        self._write("INSERT INTO label_checks VALUES (?,?,?,?,?)", [row])
        if annotators is not None:
            crowd = (project_id, version, now, json.dumps(annotators))
            self._write("INSERT INTO annotator_checks VALUES (?,?,?,?)", [crowd])

    def annotator_checks(self, project_id: int) -> list[dict[str, Any]]:
        rows = self._select("SELECT * FROM annotator_checks WHERE project_id = ? ORDER BY recorded_at", project_id)
        return [{**r, "summary": json.loads(r["summary"])} for r in rows]

    def record_label_flags(self, project_id: int, version: str | None, flags: Iterable[dict[str, Any]]) -> None:
        """Tasks newly flagged as probable label errors (a flag is one per annotation revision)."""
        rows = [
            (
                project_id,
                f["task_id"],
                f["annotated_at"],
                time.time(),
                version,
                f["given"],
                f["suggested"],
                f["quality"],
                f.get("reason"),
            )
            for f in flags
        ]
        if rows:
            self._write("INSERT INTO label_flags VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", rows)

    def record_label_verdicts(self, project_id: int, verdicts: Iterable[dict[str, Any]]) -> None:
        """What reviewers did with flags: changed / kept / removed, who, when (one verdict per flag)."""
        rows = [
            (
                project_id,
                v["task_id"],
                v["annotated_at"],
                v.get("version"),
                v["verdict"],
                v["given"],
                v["suggested"],
                v.get("final"),
                v.get("reviewer"),
                v.get("decided_at"),
                v.get("quality"),
                time.time(),
            )
            for v in verdicts
        ]
        if rows:
            self._write("INSERT INTO label_verdicts VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", rows)

    def open_label_flags(self, project_id: int) -> list[dict[str, Any]]:
        """Flags no reviewer has acted on yet."""
        return self._select(
            "SELECT f.* FROM label_flags f LEFT JOIN label_verdicts v ON v.project_id = f.project_id "
            "AND v.task_id = f.task_id AND v.annotated_at = f.annotated_at "
            "WHERE f.project_id = ? AND v.task_id IS NULL ORDER BY f.flagged_at",
            project_id,
        )

    def label_verdicts(self, project_id: int) -> list[dict[str, Any]]:
        return self._select("SELECT * FROM label_verdicts WHERE project_id = ? ORDER BY recorded_at", project_id)

    def record_proposal(
        self,
        project_id: int,
        proposal_id: int,
        model_version: str | None,
        source_task: int,
        wrong_label: str,
        label: str,
        threshold: float,
        task_ids: Sequence[int],
    ) -> bool:
        """A batch-correction proposal; False when this correction already has one."""
        row = (
            project_id,
            proposal_id,
            time.time(),
            model_version,
            source_task,
            wrong_label,
            label,
            threshold,
            json.dumps([int(t) for t in task_ids]),
        )
        statement = self._sql("INSERT INTO proposals VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")

        def insert(conn: Any) -> bool:
            before = self._count(conn, "proposals")
            conn.execute(statement, row)
            return self._count(conn, "proposals") > before

        return self._run(insert)

    def record_proposal_outcomes(self, project_id: int, proposal_id: int, outcomes: Iterable[dict[str, Any]]) -> None:
        """accepted / rejected / expired, per proposed task (one outcome each)."""
        rows = [
            (project_id, proposal_id, o["task_id"], o["outcome"], o.get("reviewer"), o.get("decided_at"), time.time())
            for o in outcomes
        ]
        if rows:
            self._write("INSERT INTO proposal_outcomes VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", rows)

    def proposals(self, project_id: int) -> list[dict[str, Any]]:
        """Every proposal with its task ids and the outcomes recorded so far."""
        rows = self._select("SELECT * FROM proposals WHERE project_id = ? ORDER BY created_at", project_id)
        outcomes = self._select("SELECT * FROM proposal_outcomes WHERE project_id = ?", project_id)
        by_proposal: dict[int, dict[int, dict[str, Any]]] = {}
        for o in outcomes:
            by_proposal.setdefault(int(o["proposal_id"]), {})[int(o["task_id"])] = o
        return [
            {**r, "task_ids": json.loads(r["task_ids"]), "outcomes": by_proposal.get(int(r["proposal_id"]), {})}
            for r in rows
        ]

    def record_routing_decision(
        self,
        project_id: int,
        model_version: str,
        threshold: float,
        reviewed: int,
        confirmed: int,
        low: float,
        high: float,
        decision: str,
    ) -> None:
        """The routing audit switched auto_accept for a version (``monitoring/routing_audit.py``)."""
        row = (project_id, model_version, time.time(), threshold, reviewed, confirmed, low, high, decision)
        self._write("INSERT INTO routing_decisions VALUES (?,?,?,?,?,?,?,?,?)", [row])

    def record_drift_check(
        self,
        project_id: int,
        model_version: str,
        size: int,
        p_outputs: float,
        p_embeddings: float,
        alarm: bool,
        inputs: bool = False,
    ) -> None:
        """One drift check (``monitoring/drift_monitor.py``) of newly imported tasks, or with ``inputs`` of
        what ``/predict`` was asked (the version is then marked ``INPUTS_MARK``)."""
        version = f"{model_version} {INPUTS_MARK}" if inputs else model_version
        row = (project_id, version, time.time(), size, p_outputs, p_embeddings, alarm)
        self._write("INSERT INTO drift_checks VALUES (?,?,?,?,?,?,?)", [row])

    def record_task_fields(self, project_id: int, values: dict[int, Sequence[tuple[str, str]]]) -> None:
        """Annotated tasks' values of the slice fields (``HITL_SLICE_FIELDS``), latest wins."""
        rows = [(project_id, int(task), key, value) for task, pairs in values.items() for key, value in pairs]
        statement = (
            "INSERT INTO task_fields VALUES (?,?,?,?) ON CONFLICT (project_id, task_id, field) "
            "DO UPDATE SET value = excluded.value"
        )
        if rows:
            self._write(statement, rows)

    # reading ---------------------------------------------------------------------------------
    def task_fields(self, project_id: int) -> dict[int, list[tuple[str, str]]]:
        out: dict[int, list[tuple[str, str]]] = {}
        for r in self._select("SELECT task_id, field, value FROM task_fields WHERE project_id = ?", project_id):
            out.setdefault(int(r["task_id"]), []).append((r["field"], r["value"]))
        return out

    def drift_checks(self, project_id: int) -> list[dict[str, Any]]:
        return self._select("SELECT * FROM drift_checks WHERE project_id = ? ORDER BY recorded_at", project_id)

    def routing_decisions(self, project_id: int) -> list[dict[str, Any]]:
        return self._select("SELECT * FROM routing_decisions WHERE project_id = ? ORDER BY recorded_at", project_id)

    def label_checks(self, project_id: int) -> list[dict[str, Any]]:
        rows = self._select("SELECT * FROM label_checks WHERE project_id = ? ORDER BY recorded_at", project_id)
        return [{**r, "suspects": json.loads(r["suspects"])} for r in rows]

    def corrections(self, project_id: int) -> list[dict[str, Any]]:
        return self._select("SELECT * FROM corrections WHERE project_id = ? ORDER BY annotated_at", project_id)

    def versions(self, project_id: int) -> list[dict[str, Any]]:
        return self._select("SELECT * FROM model_versions WHERE project_id = ? ORDER BY recorded_at", project_id)

    def events(self, project_id: int) -> list[dict[str, Any]]:
        return self._select("SELECT * FROM events WHERE project_id = ? ORDER BY received_at", project_id)

    def correction_rates(self) -> list[dict[str, Any]]:
        """Share of shown predictions that annotators changed, per project and model version."""
        return self._select(
            "SELECT project_id, prediction_model_version AS model_version, "
            "AVG(CASE WHEN changed THEN 1.0 ELSE 0.0 END) AS rate, COUNT(*) AS n FROM corrections "
            "WHERE changed IS NOT NULL GROUP BY project_id, prediction_model_version"
        )

    def latest_drift_checks(self) -> list[dict[str, Any]]:
        """Each project's most recent drift check of each kind (imported tasks, ``/predict`` inputs)."""
        latest: dict[tuple[int, bool], dict[str, Any]] = {}
        for row in self._select("SELECT * FROM drift_checks ORDER BY recorded_at"):
            latest[(int(row["project_id"]), is_inputs_check(row))] = row
        return list(latest.values())

    def version_counts(self) -> list[dict[str, Any]]:
        return self._select(
            "SELECT project_id, kind, published, COUNT(*) AS n FROM model_versions GROUP BY project_id, kind, published"
        )

    def project_ids(self) -> list[int]:
        rows = self._select(
            "SELECT DISTINCT project_id FROM events WHERE project_id IS NOT NULL AND outcome IN ('queued', 'coalesced')"
        )  # projects that really learn
        return sorted(int(r["project_id"]) for r in rows)

    def _select(self, statement: str, *params: Any) -> list[dict[str, Any]]:
        def select(conn: Any) -> list[dict[str, Any]]:
            cursor = conn.execute(self._sql(statement), params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return self._run(select)

    @staticmethod
    def _count(conn: Any, table: str) -> int:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


class _Tx:
    """One transaction on a per-thread connection; sqlite runs in autocommit, so BEGIN explicitly."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres

    def __enter__(self) -> Any:
        if not self.postgres:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.conn.commit() if self.postgres else self.conn.execute("COMMIT")
        else:  # on a lost connection the rollback fails too; the original error is the one to raise
            with contextlib.suppress(Exception):
                self.conn.rollback() if self.postgres else self.conn.execute("ROLLBACK")


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)
