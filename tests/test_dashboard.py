"""`GET /dashboard`: the projects at a glance and each project's report, live, behind the same
authentication as the rest; checked in a real browser (headless Chromium) too (issue 16, item 6)."""

from __future__ import annotations

import shutil
import threading

import pytest
from pydantic import SecretStr
from werkzeug.serving import make_server

from backend.ids import JobKind
from backend.jobs.queue import RetrainQueue
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.monitoring.stopping import StoppingState
from backend.server.app import create_app
from backend.stores.audit import AuditStore
from backend.stores.queue_state import SyncState, queue_state_location
from backend.tools.bench.common import free_port
from tests.support.payloads import AG_CONFIG
from tests.test_audit import _correction

AUTH = ("admin", "dash-secret")
# every section a populated project page shows, in the browser too
SECTIONS = (
    "Monitors",
    "When to stop",
    "Retrain queue",
    "Quality per model version",
    "Calibration",
    "Queue",
    "Retrain history",
    "Slices",
    "Slices across versions",
    "Auto-accept in production",
    "Drift",
    "Probable label errors",
    "Batch corrections",
    "Candidates",
)
OVERVIEW = (
    "project",
    "serving",
    "versions",
    "annotations",
    "pre-annotations changed",
    "auto_accept (pool coverage)",
    "drift",
    "worst slice (held-out)",
    "when to stop",
    "label checks",
    "retrains",
)


@pytest.fixture
def populated(settings, predictor, redis_server):
    """Project 7 with two versions, audited corrections, a drift alarm, auto_accept switched off for
    v1 and on for v2 (over part of the pool), slices, and retrain jobs waiting and done."""
    spec = parse_label_config(AG_CONFIG)
    encoder = predictor.encoder()
    examples = [
        Example(t, (lb,), i) for i, (t, lb) in enumerate([("goal scored", "Sports"), ("stocks", "Business")] * 5)
    ]
    head = fit_head(encoder, spec, examples)
    v1 = publish_head(
        predictor.registry,
        "7",
        spec,
        encoder,
        head,
        examples,
        extra={
            "metrics": {"primary": 0.7, "slices": {"class: World": {"n": 30, "accuracy": 0.7}}},
            "routing": {"threshold": 0.0},
        },
    )
    slices = {"class: Sports": {"n": 60, "accuracy": 0.95}, "class: World": {"n": 40, "accuracy": 0.62}}
    v2 = publish_head(
        predictor.registry,
        "7",
        spec,
        encoder,
        head,
        examples,
        extra={"metrics": {"primary": 0.8, "slices": slices}, "routing": {"threshold": 0.9}},
    )
    SyncState(queue_state_location(settings.data_dir)).put(
        7, [(i, v2, "h", 0, None, 0.5, 0.95 if i < 3 else 0.6) for i in range(10)]
    )  # 3 of 10 above 0.9
    audit = AuditStore(str(settings.data_dir / "audit.sqlite3"))
    corrections = [_correction(i, changed=i % 3 == 0) for i in range(1, 10)]
    audit.record_corrections([c.__class__(**{**c.__dict__, "prediction_model_version": v1}) for c in corrections])
    audit.record_version(7, v1, "head", True, 10, "a", {"primary": 0.7}, {"reason": "first"})
    audit.record_version(7, v2, "head", True, 20, "b", {"primary": 0.8}, {"reason": "better"})
    audit.record_drift_check(7, v2, 200, 0.0004, 0.002, True)
    audit.record_routing_decision(7, v1, 0.0, 9, 6, 0.35, 0.88, "auto_accept off: 6/9 kept")
    suspect = {
        "task_id": 4,
        "given": "Sports",
        "suggested": "Business",
        "quality": 0.02,
        "neighbours": [5],
        "reason": "model disagrees",
    }
    audit.record_label_check(7, v2, 9, [suspect, {**suspect, "task_id": 6}])
    audit.record_proposal(7, 71, v2, 3, "Sports", "Business", 0.8, [8, 9])
    stopping = StoppingState(queue_state_location(settings.data_dir))
    stopping.stop_set(7, list(range(10)))
    for version in (v1, v2):
        stopping.record(7, version, {i: "Sports" for i in range(10)}, 0.3)
    guarded = settings.model_copy(
        update={
            "basic_auth_user": AUTH[0],
            "basic_auth_password": SecretStr(AUTH[1]),
            "redis_url": redis_server.url,
            "queue_name": "dashboard-test",
        }
    )
    queue = RetrainQueue(guarded)
    queue.request(7, JobKind.FULL, reason="new labels")
    queue.record_duration(7, JobKind.HEAD, "published", 2.345)
    return create_app(guarded, predictor=predictor), v2


def test_the_dashboard_lists_projects_and_serves_each_report_behind_auth(populated):
    app, serving = populated
    client = app.test_client()
    assert client.get("/dashboard").status_code == 401
    headers = {"Authorization": "Basic YWRtaW46ZGFzaC1zZWNyZXQ="}  # admin:dash-secret
    overview = client.get("/dashboard", headers=headers).get_data(as_text=True)
    assert 'href="/dashboard/7"' in overview and serving in overview and "DRIFT" in overview
    assert "off for" in overview and "33%" in overview  # auto_accept switched off; 3 of 9 changed
    assert "(30% of the pool)" in overview  # v2 auto-accepts 3 of the 10 pool tasks
    assert "class: World: 0.62 of 40" in overview  # the serving version's worst slice
    assert "full queued" in overview and "last: head published in 2.3 s" in overview
    assert "<td>still learning</td>" in overview  # one kappa so far: not yet stable
    assert "<td>2 suspected label errors; 1 batch-correction proposal</td>" in overview
    page = client.get("/dashboard/7", headers=headers).get_data(as_text=True)
    assert 'http-equiv="refresh"' in page and 'href="/dashboard"' in page
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page
    history = page.split("<h2>Slices across versions</h2>", 1)[1].split("</table>", 1)[0]
    world = history.split("<td>class: World</td>", 1)[1].split("</tr>", 1)[0]
    assert world == "<td>0.70 of 30</td><td>0.62 of 40</td>"
    # v1 had no Sports slice at publish; annotators changed 3 of its 9 pre-annotations on tasks they labeled Sports
    assert "<td>class: Sports</td><td>–; 33% changed</td><td>0.95 of 60</td>" in history
    # the monitors' findings, alarms first: the same data the overview's columns summarise
    monitors = page.split("<h2>Monitors</h2>", 1)[1].split("</ul>", 1)[0]
    alarms = [item for item in monitors.split("<li")[1:] if item.startswith(" class=alarm")]
    assert any("drift: DRIFT: 200 tasks" in a for a in alarms) and any("2 suspected label errors" in a for a in alarms)
    assert monitors.index("DRIFT") < monitors.index("stopping: ")  # alarms before the rest
    retrains = page.split("<h2>Retrain queue</h2>", 1)[1].split("</p>", 1)[0]
    assert "full queued" in retrains and "head published in 2.3 s" in retrains  # the same line as the overview's
    missing = client.get("/dashboard/99", headers=headers)
    assert missing.status_code == 404 and "/dashboard lists" in missing.json["error"]


def test_the_dashboard_in_a_browser(populated, tmp_path):
    from playwright.sync_api import sync_playwright

    app, _ = populated
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser_path, "headless Chromium is needed: apt-get install chromium (test.sh does, as root)"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            context = browser.new_context(
                http_credentials={"username": AUTH[0], "password": AUTH[1]}, viewport={"width": 1200, "height": 900}
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/dashboard")
            page.screenshot(path=str(tmp_path / "dashboard.png"))
            assert tuple(page.locator("th").all_inner_texts()) == OVERVIEW
            page.click('a[href="/dashboard/7"]')
            page.wait_for_load_state("load")
            sections = page.locator("h2").all_inner_texts()
            assert set(SECTIONS) <= set(sections), set(SECTIONS) - set(sections)
            drawn = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
            assert drawn and all(width > 0 for width in drawn)  # every plot decoded and drawn
            page.screenshot(path=str(tmp_path / "dashboard-project.png"), full_page=True)
            assert (tmp_path / "dashboard-project.png").stat().st_size > 50_000
            assert not errors, errors
            browser.close()
    finally:
        server.shutdown()
