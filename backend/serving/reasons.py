"""Why a task is in front of a human (or may skip one), in a sentence the annotator reads on the
labeling page.

``/predict`` returns it with every prediction (``serving/routing.py``); the queue sync writes it
to the task's data (``hitl_reason``, after what is pre-selected: ``serving/presentation.py``) with the
task's rank for the head of the queue; a labeling config shows it with ``<Header value="$hitl_reason"/>``
(a tag without ``name``, so Label Studio does not require the field at import and shows nothing where
it is missing). A confidence reads as the prediction's stored score does, a whole percent; held-out
checks and audit samples say nothing of the model's answer or confidence (they are blind).
"""

from __future__ import annotations

import math
from enum import StrEnum

from backend.serving.presentation import percent, shown_score


class Why(StrEnum):
    AUDIT = "audit sample"
    DRIFT = "drift probe"
    HELDOUT = "held-out check"
    UNEXPLORED = "unexplored region"
    UNSURE = "most informative"
    COLD_START = "coverage (cold start)"
    DISAGREE = "models disagree"  # the fine-tuned model and the head on the base encoder
    SUSPECT = "suspected label error"  # written by the label check (jobs/label_errors.py)
    REVIEW = "needs review"  # /predict: below the auto-accept threshold, or none yet
    CONFIDENT = "confident"  # /predict: auto_accept, the prediction may skip review

    @property
    def title(self) -> str:
        """How a sentence of this kind starts."""
        return self.value[0].upper() + self.value[1:]


def _about(confidence: float) -> str:
    """The confidence as the header and the stored score show it (``serving/presentation.py``)."""
    return percent(shown_score(confidence))


def _share(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else f"{share:.1%}"


def _percent(value: float) -> str:
    return f"{math.floor(100 * value + 1e-9):.0f}%"


def reason(
    why: Why,
    confidence: float | None,
    threshold: float | None,
    audit_share: float = 0.05,
    second_opinion: tuple[str, str] | None = None,
    note: str | None = None,
) -> str:
    """The sentence for one task, starting with its kind (``Why``). ``threshold``: the version's
    auto-accept threshold (None: off); ``second_opinion`` (``DISAGREE``): what the serving model
    and the head on the base encoder answer; ``note`` (``REVIEW`` without a threshold): why none."""
    detail = _detail(why, confidence, threshold, audit_share, second_opinion, note)
    return f"{why.title}: {detail}"


def kind(text: str) -> Why | None:
    """The kind a reason sentence starts with, also behind the header's first sentence of what is
    pre-selected (``serving/presentation.py``)."""
    found = [(text.find(f"{why.title}: "), why) for why in Why]
    starts = [(at, why) for at, why in found if at == 0 or (at > 0 and text[at - 1] == " ")]
    return min(starts)[1] if starts else None


def _detail(
    why: Why,
    confidence: float | None,
    threshold: float | None,
    audit_share: float,
    second_opinion: tuple[str, str] | None,
    note: str | None,
) -> str:
    if why == Why.REVIEW and confidence is None:
        return "no model has been trained yet, so every task goes to a person."
    if why == Why.COLD_START or confidence is None:
        return "no model yet; chosen to cover the variety of the data before the first training."
    conf = _about(confidence)
    if why == Why.CONFIDENT and threshold is not None:  # floors on both sides: the words stay true
        checked = (
            f"; a random {_share(audit_share)} of such tasks is still checked by a person" if audit_share > 0 else ""
        )
        return (
            f"the model is confident ({_percent(confidence)}, at or above the {_percent(threshold)} that lets a "
            f"prediction skip review){checked}."
        )
    if why == Why.DISAGREE and second_opinion is not None:
        ours, theirs = second_opinion
        return (
            f"the fine-tuned model says {ours} (confidence {conf}) but the model on the base encoder says "
            f"{theirs}; your label settles it."
        )
    if why == Why.AUDIT:  # shown blind: neither the answer nor its confidence
        return (
            f"a random {_share(audit_share)} of the tasks that would skip review is checked by a person, to "
            "measure how often the model is really right there."
        )
    if why == Why.DRIFT:
        return (
            f"it came in a batch unlike the data the model learned from (confidence {conf}); your label shows "
            "whether the model still holds."
        )
    if why == Why.HELDOUT:
        return "a random task, never trained on, whose label measures the model's accuracy."
    if why == Why.UNEXPLORED:
        return f"no annotated task is like this one yet (confidence {conf})."
    if why == Why.REVIEW and threshold is None:
        return f"{note or 'no prediction of this version skips review yet'} (confidence {conf})."
    if threshold is not None and confidence < threshold:
        return f"the model is unsure (confidence {conf}, below the {threshold:.0%} it needs to skip review)."
    # the queue spreads its head over the clusters of the pool: the least certain task of each part
    tail = "" if threshold is not None else "; no prediction of this version skips review yet"
    return f"the least certain task left in its part of the data (confidence {conf}{tail})."
