"""`hitl report`: an HTML page with the four plots, built from the stores the backend writes."""

import re

from backend.cli.main import main
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.settings import get_settings
from backend.stores.audit import AuditStore
from backend.stores.queue_state import SyncState, queue_state_location
from backend.stores.registry import Registry
from tests.support.payloads import AG_CONFIG
from tests.test_audit import _correction


def test_report_plots_quality_calibration_queue_and_history(tmp_path, monkeypatch, predictor):
    spec = parse_label_config(AG_CONFIG)
    registry = Registry(tmp_path / "registry")
    audit = AuditStore(str(tmp_path / "audit.sqlite3"))
    encoder = predictor.encoder()
    pairs = [("goal scored", "Sports"), ("stocks", "Business")] * 5
    examples = [Example(t, (lb,), i) for i, (t, lb) in enumerate(pairs)]
    head = fit_head(encoder, spec, examples)
    reliability = [[0.55, 0.5, 12], [0.9, 0.88, 30]]
    calibration = {"temperature": 1.3, "heldout_ece_after": 0.04, "reliability_after": reliability}
    v1 = publish_head(
        registry,
        "7",
        spec,
        encoder,
        head,
        examples,
        extra={"metrics": {"primary": 0.71}, "routing": {"threshold": 0.0}},
    )
    v2 = publish_head(
        registry, "7", spec, encoder, head, examples, extra={"metrics": {"primary": 0.83}, "calibration": calibration}
    )
    audit.record_version(7, v1, "head", True, 10, "a", {"primary": 0.71}, {"reason": "first"})
    audit.record_version(7, "rejected-1", "head", False, 15, "b", {"primary": 0.6}, {"reason": "worse"})
    audit.record_version(7, v2, "full", True, 20, "c", {"primary": 0.83}, {"reason": "better <b>"})
    corrections = [_correction(i, changed=i % 3 == 0) for i in range(1, 10)]
    audit.record_corrections([c.__class__(**{**c.__dict__, "prediction_model_version": v1}) for c in corrections])
    audit.record_drift_check(7, v2, 200, 0.0004, 0.002, True)
    SyncState(queue_state_location(tmp_path)).put(7, [(i, v2, "h", 0, i / 10, 0.2 + i / 50, 0.5) for i in range(10)])

    for key, value in {"HITL_REGISTRY_DIR": tmp_path / "registry", "HITL_DATA_DIR": tmp_path}.items():
        monkeypatch.setenv(key, str(value))
    get_settings.cache_clear()
    try:
        assert main(["report", "--project", "7", "--out", str(tmp_path / "r.html")]) == 0
    finally:
        get_settings.cache_clear()
    page = (tmp_path / "r.html").read_text()
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', page)) == 4  # all four plots drawn
    assert f"serving <b>{v2}</b>" in page and "9 annotations audited, 33% of pre-annotations changed" in page
    assert "rejected-1" in page and "better &lt;b&gt;" in page  # gate reasons are escaped
    # auto_accept as humans judged it: 9 reviewed at or above v1's threshold, 6 kept
    assert "<h2>Drift</h2>" in page and "<b>drift</b>" in page
    # accuracy estimated without labels (mean confidence 0.5 over the 10 pool tasks of the last sync)
    assert "<h2>Accuracy: estimated and audited</h2>" in page and "50.0% over 10 tasks" in page
    assert "Auto-accept in production" in page
    assert f"<td>{v1}</td><td>0.000</td><td>not on the pool</td><td>9</td><td>6</td>" in page
    empty = tmp_path / "empty.html"
    from backend.oversight.report import write_report

    write_report(99, audit, registry, queue_state_location(tmp_path), empty)
    assert empty.read_text().count("No data yet") == 4 and "No retrain recorded yet" in empty.read_text()


def test_the_queue_plot_finds_the_serving_version_under_its_familys_name(tmp_path):
    from backend.oversight.collect import collect
    from backend.oversight.report import queue_figure

    registry = Registry(tmp_path / "registry")
    first = registry.publish("7", lambda folder: {"note": "starts a family"})
    refresh = registry.publish("7", lambda folder: {"family": first})  # a head refresh: Label Studio sees `first`
    SyncState(queue_state_location(tmp_path)).put(7, [(i, first, "h", 0, None, i / 10, 0.5) for i in range(10)])
    data = collect(7, AuditStore(str(tmp_path / "audit.sqlite3")), registry, queue_state_location(tmp_path))
    assert data.current == refresh and data.current_served == first
    assert queue_figure(data) is not None  # the sync keyed the pool by the family's name
