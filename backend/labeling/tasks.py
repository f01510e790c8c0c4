"""Task → model input. A bad task raises TaskError, which fails that task alone."""

from __future__ import annotations

from typing import Any

from backend.labeling.spec import TaskSpec


class TaskError(ValueError):
    """This task cannot be turned into model input; the message says why."""


def task_text(task: Any, spec: TaskSpec, max_chars: int) -> str:
    """The task's input text, cut to ``max_chars`` so that one huge text cannot stall a batch (for
    an image task, the image reference)."""
    if not isinstance(task, dict):
        raise TaskError(f"task must be a JSON object, got {type(task).__name__}")
    data = task.get("data")
    if not isinstance(data, dict):
        raise TaskError("task has no 'data' object")
    if spec.data_key not in data:
        raise TaskError(f"task data has no key {spec.data_key!r} (the config reads ${spec.data_key})")
    value = data[spec.data_key]
    if not isinstance(value, str):
        raise TaskError(f"task data {spec.data_key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise TaskError(f"task data {spec.data_key!r} is empty")
    if spec.modality == "image":
        return value  # an image reference: never cut (the image fetcher bounds its size)
    return value[:max_chars]
