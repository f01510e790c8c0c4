"""Why a task is in front of a human (or may skip one), in a sentence the annotator reads on the
labeling page.

``/predict`` returns it with every prediction (``serving/routing.py``); the queue sync writes it
to the task's data (``hitl_reason``) with the task's rank for the head of the queue; a labeling config
shows it with ``<Header value="$hitl_reason"/>`` (a tag without ``name``, so Label Studio does not
require the field at import and shows nothing where it is missing). Confidences are rounded down
to 5 points (so "below the threshold" stays true in the words), and a retrain that moves a
confidence a little does not rewrite the task.
"""

from __future__ import annotations

import math
from enum import StrEnum


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
    return f"about {5 * math.floor(20 * confidence + 1e-9):.0f}%"


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
    """The kind a reason sentence starts with."""
    head = text.split(":", 1)[0].lower()
    return next((why for why in Why if why.value == head), None)


def _detail(
    why: Why, confidence: float | None, threshold: float | None, audit_share: float,
    second_opinion: tuple[str, str] | None, note: str | None,
) -> str:  # fmt: skip
    if why == Why.REVIEW and confidence is None:
        return "no model has been trained yet, so every task goes to a person."
    if why == Why.COLD_START or confidence is None:
        return "no model yet; chosen to cover the variety of the data before the first training."
    conf = _about(confidence)
    if why == Why.CONFIDENT and threshold is not None:  # floors on both sides: the words stay true
        checked = (f"; a random {_share(audit_share)} of such tasks is still checked by a person" if audit_share > 0
                   else "")  # fmt: skip
        return (f"the model is confident ({_percent(confidence)}, at or above the {_percent(threshold)} that lets a "
                f"prediction skip review){checked}.")  # fmt: skip
    if why == Why.DISAGREE and second_opinion is not None:
        ours, theirs = second_opinion
        return (f"the fine-tuned model says {ours} (confidence {conf}) but the model on the base encoder says "
                f"{theirs}; your label settles it.")  # fmt: skip
    if why == Why.AUDIT:
        return (f"the model is confident ({conf}) and would skip review, so a random {_share(audit_share)} of such "
                "tasks is checked by a person to measure how often it is really right.")  # fmt: skip
    if why == Why.DRIFT:
        return (f"it came in a batch unlike the data the model learned from (confidence {conf}); your label shows "
                "whether the model still holds.")  # fmt: skip
    if why == Why.HELDOUT:
        return f"a random task, never trained on, that measures the model's accuracy (confidence {conf})."
    if why == Why.UNEXPLORED:
        return f"no annotated task is like this one yet (confidence {conf})."
    if why == Why.REVIEW and threshold is None:
        return f"{note or 'no prediction of this version skips review yet'} (confidence {conf})."
    if threshold is not None and confidence < threshold:
        return f"the model is unsure (confidence {conf}, below the {threshold:.0%} it needs to skip review)."
    # the queue spreads its head over the clusters of the pool: the least certain task of each part
    tail = "" if threshold is not None else "; no prediction of this version skips review yet"
    return f"the least certain task left in its part of the data (confidence {conf}{tail})."
