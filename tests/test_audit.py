import pytest

from backend.stores.audit import AuditStore, Correction
from tests.support.services import postgres_database


def _correction(annotation_id, annotated_at="2026-11-24T10:00:00Z", changed=True):
    shown, final = [{"value": {"choices": ["World"]}}], [{"value": {"choices": ["Sports"]}}]
    return Correction(
        7, 100 + annotation_id, annotation_id, "3", annotated_at, "v2-x", 0.42, shown, final, changed, "why"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield AuditStore(str(tmp_path / "audit.sqlite3"))
        return
    with postgres_database() as (_, url):
        yield AuditStore(url)


def test_corrections_are_append_only_and_idempotent(store):
    assert store.record_corrections([_correction(1), _correction(2)]) == 2
    assert store.record_corrections([_correction(1), _correction(2)]) == 0  # pulled again: no duplicate
    assert store.record_corrections([_correction(1, "2026-11-25T09:00:00Z", changed=False)]) == 1  # a new revision
    rows = store.corrections(7)
    assert [r["annotation_id"] for r in rows] == [1, 2, 1]
    assert rows[0]["prediction_model_version"] == "v2-x" and rows[0]["rationale"] == "why"
    assert bool(rows[2]["changed"]) is False


def test_events_and_versions(store):
    store.record_event("ANNOTATION_CREATED", 7, [1, 2], "queued")
    store.record_event("ANNOTATION_CREATED", 8, [3], "coalesced")
    store.record_version(7, "v1-x", "head", True, 40, "abc", {"primary": 0.8}, {"passed": True})
    store.record_version(7, "v1-x", "head", True, 40, "abc", {"primary": 0.8}, {"passed": True})
    assert [e["outcome"] for e in store.events(7)] == ["queued"]
    assert store.project_ids() == [7, 8]
    versions = store.versions(7)
    assert len(versions) == 1 and versions[0]["fingerprint"] == "abc"


def test_postgresql_connections_lost_between_writes_are_replaced(tmp_path):
    """After PostgreSQL drops the store's connection (restart, failover), the next write reconnects
    and lands exactly once."""
    with postgres_database() as (admin, url):
        name = url.rsplit("/", 1)[1]
        store = AuditStore(url)
        assert store.record_corrections([_correction(1)]) == 1
        for round_ in range(3):
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchall()
            assert killed and all(row[0] for row in killed)
            assert store.record_corrections([_correction(2 + round_), _correction(1)]) == 1
            store.record_version(7, f"v{round_}-x", "head", True, 40, "abc", {}, {"passed": True})
        assert sorted(r["annotation_id"] for r in store.corrections(7)) == [1, 2, 3, 4]
        assert [v["version"] for v in store.versions(7)] == ["v0-x", "v1-x", "v2-x"]
