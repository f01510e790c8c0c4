"""Bulk writes to a real Label Studio that is slower than our patience: a prediction import that
timed out on our side may still be applied on Label Studio's, so it is never sent twice."""

from __future__ import annotations

import pytest

from backend.stores.labelstudio import LabelStudioClient
from tests.support.payloads import AG_CONFIG

pytestmark = pytest.mark.e2e


def test_an_import_that_timed_out_but_was_applied_is_not_written_twice(label_studio):
    ls = LabelStudioClient(label_studio.url, label_studio.token)
    project = ls.create_project("Timed-out writes", AG_CONFIG)
    ls.import_tasks(project, [{"text": f"news item {i}"} for i in range(1500)])
    ids = [t["id"] for t in ls.tasks(project, page_size=1000)]
    result = [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": ["World"]}}]
    impatient = LabelStudioClient(label_studio.url, label_studio.token, timeout_s=0.05)  # every import times out here
    written = impatient.import_predictions(
        project, [{"task": t, "result": result, "score": 0.5, "model_version": "v1-x"} for t in ids]
    )
    held = {t["id"]: [p["model_version"] for p in t["predictions"]] for t in ls.tasks(project, page_size=1000)}
    assert written == len(ids) and set(held) == set(ids)
    doubled = [t for t, versions in held.items() if versions.count("v1-x") != 1]
    assert not doubled, f"{len(doubled)} tasks hold the prediction {len(doubled) and held[doubled[0]]}"
