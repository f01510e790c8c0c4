"""What follows a publish is decided by one pure function (``jobs/after_publish.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.ids import JobKind
from backend.jobs.after_publish import FollowUp, follow_ups
from backend.labeling import parse_label_config
from backend.settings import Settings

CONFIGS = Path(__file__).parent.parent / "labeling_configs"


def _spec(name: str):  # type: ignore[no-untyped-def]
    return parse_label_config((CONFIGS / f"{name}.xml").read_text())


def _kinds(wanted: list[FollowUp]) -> list[JobKind]:
    return [f.kind for f in wanted]


def _never_asked() -> bool:
    raise AssertionError("a fine-tune is only considered after a head retrain")


def test_a_head_refresh_of_text_classification_asks_for_everything(tmp_path):
    settings = Settings(data_dir=tmp_path)
    wanted = follow_ups(settings, _spec("text_classification"), JobKind.HEAD, "v3-x", False, lambda: True)
    assert wanted == [
        FollowUp(JobKind.SYNC, "published v3-x", "sync_requested"),
        FollowUp(JobKind.PROPOSALS, "v3-x", "proposals_requested"),
        FollowUp(JobKind.LABEL_ERRORS, "v3-x", "label_errors_requested"),
        FollowUp(JobKind.FULL, "new labels", "finetune_requested"),
    ]
    assert JobKind.FULL not in _kinds(
        follow_ups(settings, _spec("text_classification"), JobKind.HEAD, "v3-x", False, lambda: False)
    )


def test_a_new_encoder_embeds_the_pool_before_the_sync(tmp_path):
    settings = Settings(data_dir=tmp_path)
    wanted = follow_ups(settings, _spec("text_classification"), JobKind.FULL, "v4-x", True, _never_asked)
    assert _kinds(wanted) == [JobKind.EMBED, JobKind.PROPOSALS, JobKind.LABEL_ERRORS]
    assert wanted[0] == FollowUp(JobKind.EMBED, "published v4-x", "embed_requested")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("image_classification", [JobKind.SYNC, JobKind.LABEL_ERRORS]),  # proposals are for text only
        ("multi_label_classification", [JobKind.SYNC]),
        ("named_entity_recognition", [JobKind.SYNC]),
    ],
)
def test_proposals_and_label_checks_are_for_single_label_classification(tmp_path, config, expected):
    assert (
        _kinds(follow_ups(Settings(data_dir=tmp_path), _spec(config), JobKind.FULL, "v2-x", False, _never_asked))
        == expected
    )


def test_each_follow_up_has_its_switch(tmp_path):
    off = Settings(
        data_dir=tmp_path, sync_after_publish=False, proposals_after_publish=False, label_errors_after_publish=False
    )
    assert follow_ups(off, _spec("text_classification"), JobKind.FULL, "v2-x", True, _never_asked) == []
