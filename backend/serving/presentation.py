"""What an annotator is shown with a task: the model's answer pre-selected, only its leaning, or
nothing at all (a blind check), and the header sentence that says which and why.

Pre-annotations speed people up where they are right and anchor them where they are wrong, and
the queue serves exactly the tasks the model cannot decide (docs/annotator.md has the evidence).
So an answer is pre-selected only at or above the version's *pre-select level*: the confidence at
which its held-out pre-annotations were right at least ``HITL_PRESELECT_PRECISION`` of the time.
Below it nothing is pre-selected and the header names the model's leaning and its calibrated
confidence. Held-out checks and audit samples are blind: their labels measure the model, so the
person answering must not see the model's answer, its leaning or its confidence.

The confidence in the header is the prediction's stored ``score`` as a whole percent: the sync
writes both from the same number (``shown_score``), and never changes a prediction once written,
so they cannot disagree.
"""

from __future__ import annotations

from enum import StrEnum


class Presentation(StrEnum):
    PRESELECT = "pre-selected"
    LEAN = "leaning only"
    BLIND = "blind"


def present(confidence: float, blind: bool, level: float | None) -> Presentation:
    """How one prediction is shown: ``blind`` for held-out checks and audit samples; ``level``: the
    version's pre-select level (None: no level yet, nothing is pre-selected)."""
    if blind:
        return Presentation.BLIND
    if level is not None and shown_score(confidence) >= level:
        return Presentation.PRESELECT
    return Presentation.LEAN


def level_in_force(version_level: float | None, target_precision: float) -> float | None:
    """The pre-select level a version is shown with: its own (None: none yet), or 0 (always
    pre-select, as before this policy) where ``HITL_PRESELECT_PRECISION`` is 0."""
    return 0.0 if target_precision <= 0 else version_level


def shown_score(confidence: float) -> float:
    """The score stored with a prediction (Label Studio's uncertainty sampling orders by it, so it
    keeps its precision); its header reads it out as a whole percent (``percent``)."""
    return round(float(confidence), 6)


def percent(score: float) -> str:
    return f"{round(100 * score):.0f}%"


def header(presentation: Presentation, leaning: str | None, score: float, why: str | None) -> str:
    """The sentence on top of the labeling page: what is (not) pre-selected, then why the task is
    in front of a person (``serving/reasons.py``)."""
    if presentation == Presentation.BLIND:
        head = "Blind check: the model's answer is hidden; choose what you see."
    elif presentation == Presentation.PRESELECT and leaning:
        head = f"Pre-filled: {leaning}, {percent(score)} confident. Accept it or fix it."
    elif leaning:
        head = f"Model unsure: leans {leaning}, {percent(score)}. Nothing is pre-selected."
    else:
        head = "No model answer yet. Nothing is pre-selected."
    return f"{head} {why}" if why else head
