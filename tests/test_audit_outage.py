"""PostgreSQL down when the server starts: /health and /predict serve, /health says the audit store
is degraded, audit writes wait in a bounded on-disk spool, and arrive once the database answers.

The database "comes back" at the same address: a loopback port nothing listens on at first, then
a plain TCP forwarder from it to this machine's real PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from backend.server.projects import KNOWN
from backend.settings import Settings
from backend.stores.audit import AuditStore
from backend.stores.audit_spool import AuditSpool, AuditSpoolFull
from backend.tools.bench.common import free_port
from tests.support.payloads import annotation_event, ls_task, predict_body
from tests.support.services import postgres_database, start_backend, wait_until


class Forwarder:
    """Accepts on 127.0.0.1:``port`` and pipes each connection to PostgreSQL on 127.0.0.1:5432."""

    def __init__(self, port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(("127.0.0.1", 5432))
                self.open += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()
        for s in self.open:
            with contextlib.suppress(OSError):
                s.close()


def _events(url: str) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute("SELECT action, project_id, annotation_ids FROM events ORDER BY annotation_ids").fetchall()


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_the_server_serves_without_its_database_and_the_waiting_writes_arrive(
    redis_server, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet: PostgreSQL is "down"
    with postgres_database("hitl_outage") as (_admin, real_url):
        database = real_url.rsplit("/", 1)[1]
        env = {
            "HITL_REDIS_URL": redis_server.url,
            "HITL_QUEUE_NAME": f"audit-outage-{time.time_ns()}",
            "HITL_AUDIT_DB_URL": f"postgresql://postgres@127.0.0.1:{port}/{database}",
            "HITL_MODEL_NAME": str(tiny_encoder_dir),
            "HITL_DATA_DIR": str(tmp_path / "data"),
            "HITL_REGISTRY_DIR": str(tmp_path / "registry"),
        }
        backend, url = start_backend(env, tmp_path)
        forwarder = None
        try:
            health = requests.get(url + "/health", timeout=5).json()
            assert health["status"] == "UP"
            assert any("audit store" in d for d in health["degraded"]), health
            predicted = requests.post(
                url + "/predict", json=predict_body([ls_task(1, {"text": "a match"})]), timeout=30
            )
            assert predicted.status_code == 200 and predicted.json()["results"], predicted.text
            redis.Redis.from_url(redis_server.url).set(KNOWN.format(project=7), "1", ex=600)  # LS confirmed it
            for annotation in (11, 12, 13):
                answer = requests.post(url + "/webhook", json=annotation_event(annotation=annotation), timeout=10)
                assert answer.status_code < 300, answer.text
            spool = tmp_path / "data" / "audit-spool.jsonl"
            wait_until(lambda: spool.exists() and len(spool.read_text().splitlines()) == 3, 10, "3 writes spooled")
            assert "3 write(s) wait" in " ".join(requests.get(url + "/health", timeout=5).json()["degraded"])

            forwarder = Forwarder(port)  # the database is back at the same address
            rows = wait_until(lambda: len(_events(real_url)) == 3 and _events(real_url), 60, "spooled events replayed")
            assert [r[2] for r in rows] == ["[11]", "[12]", "[13]"]
            wait_until(lambda: not requests.get(url + "/health", timeout=5).json()["degraded"], 30, "not degraded")
            assert spool.read_text() == ""
        finally:
            backend.stop()
            if forwarder:
                forwarder.close()


def test_a_full_spool_refuses_the_write_and_says_what_to_do(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "audit-spool.jsonl", max_bytes=200)
    spool.append("INSERT INTO events VALUES (%s)", [[1]])
    with pytest.raises(AuditSpoolFull, match="HITL_AUDIT_SPOOL_MAX_MB"):
        spool.append("INSERT INTO events VALUES (%s)", [["x" * 300]])
    assert spool.pending() == 1


def test_a_store_opened_while_the_database_is_away_spools_then_replays(tmp_path: Path) -> None:
    port = free_port()
    with postgres_database("hitl_outage") as (_admin, real_url):
        settings = Settings(
            audit_db_url=f"postgresql://postgres@127.0.0.1:{port}/{real_url.rsplit('/', 1)[1]}", data_dir=tmp_path
        )
        store = AuditStore.from_settings(settings)  # no exception: the database is away
        store.record_event("ANNOTATION_CREATED", 5, [1], "queued")
        assert "1 write(s) wait" in (store.degraded() or "")
        forwarder = Forwarder(port)
        try:
            wait_until(lambda: _events(real_url), 30, "the waiting write replayed")
            assert store.degraded() is None
            assert [e["project_id"] for e in store.events(5)] == [5]
        finally:
            forwarder.close()
