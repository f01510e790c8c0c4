"""Watching the model and the people, between learning and the queue: drift of what arrives
(``drift``, ``drift_monitor``), when labels stop paying (``stopping``), where a fine-tuned model
and the base encoder's head disagree (``second_opinion``), whether auto-accepted answers hold up
(``routing_audit``) and which annotations are probably wrong (``label_errors``).

Each says what it found as a ``Finding``: one shape that the sync's summary, the worker's log,
the dashboard and the report read alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DRIFT, INPUT_DRIFT, STOPPING, SECOND_OPINION = "drift", "drift of /predict inputs", "stopping", "second opinion"
ROUTING_AUDIT, LABEL_ERRORS = "routing audit", "label errors"


@dataclass(frozen=True)
class Finding:
    """What one monitor found: ``alarm`` when people should act, ``line`` in words, ``figures`` to plot."""

    monitor: str
    alarm: bool
    line: str
    figures: dict[str, Any] = field(default_factory=dict)

    def said(self) -> str:
        """The line with the monitor's name in front (where the line does not start with it)."""
        return self.line if self.line.startswith(self.monitor) else f"{self.monitor}: {self.line}"

    def as_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "alarm": self.alarm, "line": self.line, "figures": self.figures}
