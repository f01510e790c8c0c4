"""One annotator's session, replayed as a new user lives it (issue 18): the README's main job
(`hitl run`, embedded Redis), `hitl configs load`, 400 AG News tasks through `hitl import`, then
150 annotations, each on the task the labeling page opens next from the queue tab ("Label Tasks As
Displayed": Label Studio's ``next_task`` action with the tab's ordering), at an annotator's pace.

What must hold: after the first trained version, the tasks Label Studio serves carry a
pre-annotation of the project's version (>= 98 %); the held-out share of the annotated tasks
tracks HITL_HOLDOUT_FRACTION (within 5 points); by 150 labels the gate has the 20 held-out
annotations it needs to decide; and the score shown with a pre-annotation is a confidence: it
separates right from wrong pre-annotations (AUROC >= 0.65).
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from backend.query.sync import VIEW_TITLE
from backend.query.writeback import RANK_FIELD
from backend.serving.routing import is_heldout
from backend.stores.audit import AuditStore
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry
from tests.support.data import load_jsonl
from tests.support.main_job import main_job
from tests.support.services import ROOT, wait_until

pytestmark = pytest.mark.e2e

ANNOTATIONS = 150
HOLDOUT = 0.15
SECRET = "session-secret"


def test_an_annotators_session_through_label_studios_next(label_studio, tmp_path):
    settings = {"HITL_WEBHOOK_SECRET": SECRET, "HITL_HOLDOUT_FRACTION": str(HOLDOUT), "HITL_FINETUNE_EVERY": "0"}
    with main_job(label_studio, tmp_path, **settings) as job:
        rows = load_jsonl("ag_news", "train", 400)
        tasks = [{"text": r["text"], "gold": r["label"]} for r in rows]
        project = job.load_project(ROOT / "labeling_configs" / "text_classification.xml", "Session", tasks)

        ls = LabelStudioClient(label_studio.url, label_studio.token)
        registry = Registry(tmp_path / "var" / "registry")
        served: list[tuple[str, bool]] = []  # (project's version before the serve, pre-annotation shown)
        annotated: list[int] = []
        confidence: list[tuple[int, str, float, str]] = []  # (task, version, score shown, gold)
        tab = ls.ensure_view(project, VIEW_TITLE, f"tasks:data.{RANK_FIELD}")  # made by the import's sync
        misses: list[tuple[int, str, str, list[str]]] = []
        for _ in range(ANNOTATIONS):
            # the project's version is read on both sides of the serve: a sync may switch it in between.
            # Label Studio serves only the predictions of the version in effect as it answers
            # (Task.get_predictions_for_prelabeling), so the task holds one side's or none: none means
            # the sync switched before writing that version's predictions
            before = ls.project(project)["model_version"]
            task = ls.next_task(project, tab)
            version = ls.project(project)["model_version"]
            # (a prediction of the version, pre-filled or not: docs/annotator.md; the model's answer is in the audit)
            shown = [p for p in task.get("predictions") or [] if p.get("model_version") in (before, version)]
            served.append((before, bool(shown)))  # the first trained version counts from the serve after it
            if not shown:
                held = [p.get("model_version") for p in task.get("predictions") or []]
                misses.append((task["id"], before, version, held))
            if shown:
                gold = task["data"]["gold"]
                confidence.append((task["id"], shown[0]["model_version"], float(shown[0]["score"]), gold))
            choice = [
                {
                    "from_name": "label",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": [task["data"]["gold"]]},
                }
            ]
            ls.create_annotation(task["id"], choice)
            annotated.append(task["id"])
            time.sleep(0.4)  # a fast annotator: retrains and syncs run while they work

        trained = [ok for version, ok in served if version not in ("cold-start", None, "hitl-backend")]
        assert len(trained) >= ANNOTATIONS - 40, f"the first version came late: {len(trained)} served after it"
        coverage = sum(trained) / len(trained)
        held_share = sum(is_heldout(t, HOLDOUT) for t in annotated) / len(annotated)
        # the gate judged a candidate trained on every annotation (it may keep the serving version)
        audit = AuditStore(str(tmp_path / "var" / "audit.sqlite3"))
        last = wait_until(
            lambda: [v for v in audit.versions(project) if v["examples"] == ANNOTATIONS],
            240,
            "a candidate on all 150 annotations",
        )[-1]
        # the score Label Studio stores with every pre-annotation of the pool, and the ones annotators were
        # shown (chosen for being uncertain, so within a narrower range)
        version = ls.project(project)["model_version"]
        answers = audit.shown(project)  # the model's answer in each prediction the sync wrote, shown or not
        pool = [
            (p["score"], answers[(t["id"], version)]["answer"] == [t["data"]["gold"]])
            for t in ls.unlabeled_tasks(project)
            for p in t["predictions"]
            if p["model_version"] == version and (t["id"], version) in answers
        ]
        confidence = [
            (score, answers[(task, name)]["answer"] == [gold])
            for task, name, score, gold in confidence
            if (task, name) in answers
        ]
        auroc = roc_auc_score([right for _, right in pool], [score for score, _ in pool])
        auroc_served = roc_auc_score([right for _, right in confidence], [score for score, _ in confidence])
        print(
            f"session: confidence AUROC {auroc:.3f} over the pool's {len(pool)} pre-annotations "
            f"({np.mean([r for _, r in pool]):.1%} right), {auroc_served:.3f} over the {len(confidence)} served "
            f"({np.mean([right for _, right in confidence]):.1%} right)"
        )
        print(
            f"session: coverage {coverage:.3f} of {len(trained)} served after the first version; held-out share "
            f"{held_share:.3f}; gate held-out {json.loads(last['metrics'])['n']}; versions "
            f"{len(registry.versions(str(project)))}"
        )
        # versions are a unit people can follow, and write-back is proportional to what changed
        families = {registry.served(str(project), v) for v in registry.versions(str(project))}
        seen = [version for version, _ in served if version not in ("cold-start", None, "hitl-backend")]
        syncs = [
            (int(m[1]), int(m[2]), m[3])
            for m in re.finditer(
                r"project \d+: \d+ unlabeled tasks, (\d+) scored, (\d+) written, \d+ up to date.*?version (\S+),",
                (tmp_path / "run.log").read_text(errors="replace"),
            )
        ]
        within = [
            written / scored
            for (scored, written, name), (_, _, before) in zip(syncs[1:], syncs, strict=False)
            if name == before and scored
        ]
        print(
            f"session: {len(registry.versions(str(project)))} versions in {len(families)} families; "
            f"{len(within)} syncs within a family wrote {np.mean(within) if within else 0:.1%} of the pool"
        )
        assert len(set(seen)) <= len(families)  # Label Studio never sees a name that is not a family's
        # Label Studio sees a name per family, not per publish (early families are short: see next_family)
        assert len(families) <= ANNOTATIONS // 10 and len(families) < len(registry.versions(str(project)))
        assert coverage >= 0.98, (
            f"only {coverage:.1%} of served tasks had a pre-annotation of the project version: "
            f"(task, version before, after, versions on the task): {misses}"
        )
        assert abs(held_share - HOLDOUT) <= 0.05, f"held-out share {held_share:.3f}"
        assert auroc >= 0.65, f"the score stored does not separate right from wrong pre-annotations: {auroc:.3f}"
        assert auroc_served >= 0.5, f"the score shown is no better than chance: {auroc_served:.3f}"
        assert json.loads(last["metrics"])["n"] >= 20 and "more labels win" not in json.loads(last["gate"])["reason"]
        # the worker checked the annotations for label errors after publishing (gold labels: few suspects)
        check = wait_until(
            lambda: [c for c in audit.label_checks(project) if c["annotated"] >= 100],
            120,
            "a label check of 100+ annotations",
        )[-1]
        print(f"session: label check flagged {len(check['suspects'])} of {check['annotated']} right labels")
        assert len(check["suspects"]) <= check["annotated"] // 4, check["suspects"][:5]
