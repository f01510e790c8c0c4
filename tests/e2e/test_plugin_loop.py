"""Your model in the loop (issue 31): the README's main job, a project set up with
`hitl configs load --model` naming the scikit-learn example, a real Label Studio, AG News tasks
labeled from the queue tab through the API as the labeling page saves them. The plug-in's versions
go through the gate, its scores are calibrated, auto_accept switches on once the held-out
annotations show where it may, and the dashboard names the plug-in."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from backend.labeling import parse_label_config
from backend.models.plugin_model import PluginClassifier
from backend.query.sync import VIEW_TITLE
from backend.query.writeback import RANK_FIELD
from backend.serving.predictor import load_serving
from backend.serving.routing import SUSPENDED, is_heldout
from backend.stores.audit import AuditStore
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry
from tests.support.data import load_jsonl
from tests.support.main_job import main_job
from tests.support.payloads import predict_body
from tests.support.services import ROOT, wait_until

pytestmark = pytest.mark.e2e

MODEL = "examples.tfidf_logreg.model:TfidfLogReg"
HOLDOUT = 0.25
MAX_LABELS = 520
AUDITED = "is checked by a person"  # the audit sample's reason (serving/reasons.py)
CONFIG = ROOT / "labeling_configs" / "text_classification.xml"


def test_a_scikit_learn_plugin_gets_the_gate_calibration_routing_and_the_dashboard(label_studio, tmp_path):
    rows = load_jsonl("ag_news", "train", 600)
    settings = {
        "HITL_HOLDOUT_FRACTION": str(HOLDOUT),
        "HITL_ROUTING_TARGET_PRECISION": "0.9",
        "HITL_WEBHOOK_SECRET": "plugin-secret",
    }
    with main_job(label_studio, tmp_path, **settings) as job:
        tasks = [{"text": r["text"], "gold": r["label"]} for r in rows]
        project = job.load_project(CONFIG, "Plug-in", tasks, "--model", MODEL)  # this project's model, no HITL_MODEL
        ls = LabelStudioClient(label_studio.url, label_studio.token)
        tab = ls.ensure_view(project, VIEW_TITLE, f"tasks:data.{RANK_FIELD}")
        registry = Registry(job.folder / "registry")
        assert registry.model(project) == MODEL
        audit = AuditStore(str(job.folder / "audit.sqlite3"))
        labeled, threshold = 0, None
        while labeled < MAX_LABELS and threshold is None:
            for _ in range(20):
                task = ls.next_task(project, tab)
                version = ls.project(project)["model_version"]
                parent = next((p["id"] for p in task.get("predictions") or [] if p["model_version"] == version), None)
                ls.create_annotation(task["id"], _choice(task["data"]["gold"]), parent_prediction=parent)
                labeled += 1
            if labeled >= 200:  # from then on, after each batch: once a candidate of every label so far was judged
                wait_until(lambda n=labeled: _judged_on(audit, project) >= n, 300, f"a candidate of {labeled} labels")
                threshold = _threshold(registry, project)
            else:
                time.sleep(3)  # its retrain and sync
        assert threshold is not None, f"no auto_accept threshold after {labeled} labels"

        # every published version is the plug-in's, judged by the gate; the audit store has every candidate
        versions = [registry.meta(project, v) for v in registry.versions(project)]
        assert len(versions) >= 2 and all(m["plugin"]["name"] == MODEL for m in versions)
        assert all(m["gate"]["passed"] for m in versions) and versions[-1]["gate"]["serving_version"]
        candidates = audit.versions(project)
        assert sum(c["published"] for c in candidates) == len(versions)

        # /predict serves the calibrated plug-in: the score is its tempered top probability
        spec = parse_label_config(CONFIG.read_text())
        serving = load_serving(registry, project, spec, None)
        assert isinstance(serving.model, PluginClassifier) and serving.model.temperature != 1.0
        pool = list(ls.unlabeled_tasks(project))[:60]
        body = predict_body([{"id": t["id"], "data": {"text": t["data"]["text"]}} for t in pool], CONFIG.read_text())
        body["project"] = f"{project}.0"
        expected = serving.model.predict_proba([t["data"]["text"] for t in pool]).max(axis=1)

        def served() -> list[dict] | None:
            items = requests.post(job.url + "/predict", json=body, timeout=60).json()["results"]
            return items if np.allclose([i["score"] for i in items], expected, atol=1e-6) else None

        items = wait_until(served, 60, f"/predict to serve {serving.version}'s calibrated scores")
        # auto_accept where the held-out evidence allows it, unless the routing audit switched it off
        suspended = any(SUSPENDED in i["hitl_reason"] for i in items)
        skipped, audited = 0, 0
        for task, item in zip(pool, items, strict=True):
            if is_heldout(task["id"], HOLDOUT):
                assert not item.get("auto_accept"), item
            elif item.get("auto_accept"):
                assert item["score"] >= threshold and not suspended, item
                skipped += 1
            elif item["score"] >= threshold and not suspended:  # a person sees it anyway: an audit sample
                assert AUDITED in item["hitl_reason"], item
                audited += 1
        if suspended:  # the routing audit's decision is on record, with the precision that switched it off
            assert audit.routing_decisions(project), "auto_accept switched off with no recorded decision"
        else:
            assert skipped or not audited, "every confident prediction was an audit sample"
            assert skipped or max(expected) < threshold, f"no prediction skips review at {threshold:.3f}"

        # the dashboard says which model serves
        overview = requests.get(job.url + "/dashboard", timeout=30).text
        page = requests.get(job.url + f"/dashboard/{project}", timeout=60).text
        assert f"plug-in {MODEL}" in overview and f"plug-in {MODEL}" in page
        assert not job.errors(), job.errors()[-3:]
    print(f"plug-in loop: auto_accept at {threshold:.3f} after {labeled} labels, {len(versions)} versions")


def _threshold(registry: Registry, project: int) -> float | None:
    version = registry.current(project)
    return ((registry.meta(project, version).get("routing") or {}).get("threshold")) if version else None


def _judged_on(audit: AuditStore, project: int) -> int:
    """The most annotations a candidate was trained on, published or refused by the gate."""
    return max((int(c["examples"]) for c in audit.versions(project)), default=0)


def _choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
