"""From a Label Studio labeling config to what the model needs, and back to Label Studio's JSON."""

from backend.labeling.results import choices_result, labels_from_result
from backend.labeling.spec import TaskKind, TaskSpec, UnsupportedConfig, parse_label_config
from backend.labeling.tasks import TaskError, task_text

__all__ = [
    "TaskError",
    "TaskKind",
    "TaskSpec",
    "UnsupportedConfig",
    "choices_result",
    "labels_from_result",
    "parse_label_config",
    "task_text",
]
