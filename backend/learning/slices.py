"""Slices: no silent regression for a minority.

A slice is a named part of the held-out annotations: every class (``class: DESC``, the tasks
humans gave that label, so its accuracy is the class's recall) and every value of a task-data
field an admin names in ``HITL_SLICE_FIELDS`` (``source=forum``; the ``MAX_VALUES`` largest per
field). Each version's held-out
metrics carry its accuracy per slice, and the gate refuses a candidate that makes a slice with
enough held-out annotations worse by more than a margin, even when the overall score improves.

The candidate and the serving version are judged on the same annotations, so the comparison is
paired: only the tasks on which exactly one of them is right count, and the drop must be both
larger than the margin and unlikely under "no difference" (one-sided exact binomial test, the
McNemar test for small counts), with Holm's correction over the guarded slices so that more
classes or field values do not mean more false refusals, before the gate refuses.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import binomtest

from backend.labeling.examples import Example

MAX_VALUE_CHARS = 60  # a field value longer than this is cut in the slice's name
MAX_VALUES = 50  # per field, only the largest slices are kept (a field with an id per task is no slice)


def class_slice(label: str) -> str:
    return f"class: {label}"


def field_slice(key: str, value: str) -> str:
    return f"{key}={value}"


def field_values(data: dict[str, Any], fields: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """A task's values for the slice fields it has (scalars only, cut to ``MAX_VALUE_CHARS``)."""
    out = []
    for key in fields:
        value = data.get(key)
        if isinstance(value, str | int | float | bool) and str(value).strip():
            out.append((key, str(value).strip()[:MAX_VALUE_CHARS]))
    return tuple(out)


def members(examples: Sequence[Example]) -> dict[str, list[int]]:
    """Slice name → the indices of ``examples`` in it (per field, its ``MAX_VALUES`` largest values)."""
    out: dict[str, list[int]] = {}
    by_field: dict[str, dict[str, list[int]]] = {}
    for i, example in enumerate(examples):
        for label in example.labels:
            out.setdefault(class_slice(label), []).append(i)
        for key, value in example.slices:
            by_field.setdefault(key, {}).setdefault(field_slice(key, value), []).append(i)
    for values in by_field.values():
        out.update(sorted(values.items(), key=lambda item: (-len(item[1]), item[0]))[:MAX_VALUES])
    return out


def slice_scores(examples: Sequence[Example], wrong: Collection[int]) -> dict[str, dict[str, float]]:
    """Per slice: held-out annotations in it and the share the model got right."""
    missed = set(wrong)
    return {
        name: {"n": len(idx), "accuracy": round(1 - sum(i in missed for i in idx) / len(idx), 4)}
        for name, idx in sorted(members(examples).items())
    }


@dataclass(frozen=True)
class SliceRegression:
    name: str
    n: int
    candidate: float
    serving: float
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def text(self) -> str:
        return (
            f"slice '{self.name}' ({self.n} held-out): candidate {self.candidate:.3f} < serving "
            f"{self.serving:.3f} (paired p={self.p_value:.3g})"
        )


def paired_loss_p(lost: int, gained: int) -> float:
    """McNemar's exact test, one-sided: the chance of ``lost`` or more losses among the tasks where
    two versions disagree on being right, if neither were better (``lost`` + ``gained`` of them)."""
    return float(binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue) if lost + gained else 1.0


def regressions(
    examples: Sequence[Example],
    candidate_wrong: Collection[int],
    serving_wrong: Collection[int],
    min_eval: int,
    margin: float,
    alpha: float,
) -> list[SliceRegression]:
    """Slices with at least ``min_eval`` held-out annotations on which the candidate is worse than
    the serving version by more than ``margin``, significantly at ``alpha`` after Holm's correction
    over every guarded slice; worst first."""
    cand, serv = set(candidate_wrong), set(serving_wrong)
    guarded = {name: idx for name, idx in members(examples).items() if len(idx) >= min_eval}
    tested = []
    for name, idx in guarded.items():
        lost = sum(i in cand and i not in serv for i in idx)  # candidate wrong where serving was right
        gained = sum(i in serv and i not in cand for i in idx)
        if (lost - gained) / len(idx) <= margin:
            continue
        n = len(idx)
        p = paired_loss_p(lost, gained)
        tested.append(
            SliceRegression(name, n, 1 - sum(i in cand for i in idx) / n, 1 - sum(i in serv for i in idx) / n, p)
        )
    found = []
    for rank, result in enumerate(sorted(tested, key=lambda r: r.p_value)):  # Holm: step down over all guarded
        if result.p_value >= alpha / (len(guarded) - rank):
            break
        found.append(result)
    return sorted(found, key=lambda r: r.candidate - r.serving)
