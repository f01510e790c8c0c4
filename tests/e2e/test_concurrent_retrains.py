"""Two retrains of one project at once: the later publish is a compare-and-swap on the version its
candidate was gated against, so a candidate is never published over a version it was not judged
against. Two worker contexts (as two worker processes would have) pull from a real Label Studio;
the interleaving is forced: worker B runs its whole retrain between worker A's gate and A's publish.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

import backend.jobs.retrain as retrain_module
from backend.jobs.context import WorkerContext
from backend.jobs.retrain import retrain
from backend.settings import Settings
from tests.e2e.test_retrain_loop import choice
from tests.support.payloads import AG_CONFIG

pytestmark = pytest.mark.e2e


def test_a_candidate_gated_against_a_replaced_version_is_regated_not_published_blindly(
    label_studio, redis_server, tiny_encoder_dir, tmp_path, ag_rows, monkeypatch
):
    from backend.stores.labelstudio import LabelStudioClient

    ls = LabelStudioClient(label_studio.url, label_studio.token)
    project = ls.create_project("Concurrent retrains", AG_CONFIG)  # no webhook: only this test retrains it
    ls.import_tasks(project, [{"text": r["text"], "gold": r["label"]} for r in ag_rows[:60]])
    for task in ls.tasks(project):
        ls.create_annotation(task["id"], choice(task["data"]["gold"]))
    settings = Settings(
        model_name=str(tiny_encoder_dir),
        label_studio_url=label_studio.url,
        label_studio_api_key=SecretStr(label_studio.token),
        redis_url=redis_server.url,
        registry_dir=tmp_path / "registry",
        data_dir=tmp_path / "data",
        sync_after_publish=False,
        finetune_every=0,
        queue_name="hitl-cas-test",
    )
    worker_a, worker_b = WorkerContext.create(settings), WorkerContext.create(settings)

    baselines: list[str | None] = []
    real_decide = retrain_module.decide

    def decide_then_let_b_publish(candidate, serving, serving_version, margin, min_eval, *slices):
        decision = real_decide(candidate, serving, serving_version, margin, min_eval, *slices)
        baselines.append(serving_version)
        if len(baselines) == 1:  # A has gated against cold start; B now retrains and publishes first
            assert retrain(worker_b, project, "head")["published"]
        return decision

    monkeypatch.setattr(retrain_module, "decide", decide_then_let_b_publish)
    summary_a = retrain(worker_a, project, "head")

    registry = worker_a.registry
    b_version, *rest = registry.versions(str(project))
    assert baselines == [None, None, b_version]  # A, B, then A again against B's version
    superseded = [v for v in worker_a.audit.versions(project) if v["version"].startswith("superseded-")]
    assert len(superseded) == 1 and "re-gating" in superseded[0]["gate"] and b_version in superseded[0]["gate"]
    assert summary_a["published"] and rest == [summary_a["version"]]
    for version in registry.versions(str(project)):  # every version was judged against its parent
        meta = registry.meta(str(project), version)
        assert meta["gate"]["serving_version"] == meta["parent"], (version, meta["gate"], meta["parent"])
    assert registry.current(str(project)) == summary_a["version"]
    # nothing new in Label Studio: a further retrain (the hourly one, a catch-up) publishes nothing
    again = retrain(worker_b, project, "head")
    assert again["published"] is False and again["reason"].startswith("no new annotations since ")
    assert registry.versions(str(project)) == [b_version, summary_a["version"]]
