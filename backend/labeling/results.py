"""Model output ↔ Label Studio result JSON for choices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from backend.labeling.spec import TaskSpec


def choices_result(spec: TaskSpec, chosen: Sequence[str]) -> list[dict[str, Any]]:
    """One result region setting ``chosen``; an empty choice set is no region at all."""
    if not chosen:
        return []
    return [
        {
            "from_name": spec.from_name,
            "to_name": spec.to_name,
            "type": spec.result_type,
            "value": {"choices": list(chosen)},
        }
    ]


def labels_from_result(spec: TaskSpec, result: Iterable[Any]) -> list[str] | None:
    """The choices an annotation's result sets for this spec's control, or None if it sets none."""
    for region in result or []:
        if not isinstance(region, dict) or region.get("from_name") != spec.from_name:
            continue
        choices = (region.get("value") or {}).get("choices")
        if isinstance(choices, list):
            known = [c for c in choices if c in spec.labels]
            return known or None
    return None
