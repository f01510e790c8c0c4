"""A model written as a Label Studio ML backend, run as a black box that gives a label and a score.

Label Studio's ML SDK has a team write ``predict(tasks, context)`` (predictions carrying a
``result`` and a ``score``) and ``fit(event, data)``. Subclass ``LabelStudioMLPlugin``, set
``backend_class`` to that class, and the loop calls it as Label Studio would:

- ``fit``: ``fit("START_TRAINING", {"tasks": [...]})`` with the annotated tasks in Label Studio's
  export shape (``data``, ``annotations[].result``), instead of the class fetching them itself;
- ``predict``: ``predict([{"id": …, "data": {DATA_FIELD: text}}], context=None)``; a list of
  predictions, or an object or dict holding ``predictions``, is accepted. The top answer gets its
  ``score`` as probability (at least 1/k: it stays the top one), the other classes share the rest:
  calibration, the gate, routing and the queue then work on that score.

The class is constructed with ``label_config`` (a config with the project's classes) and nothing
else. Its own persistence is not relied on: ``save`` keeps the training tasks and ``load`` refits
on them, so any host serves the same model (a class whose fit is not deterministic serves a
close one, and says so by being non-deterministic).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backend.plugin import ClassifierPlugin, PluginError

TASKS_FILE = "training-tasks.json"


class LabelStudioMLPlugin(ClassifierPlugin):
    """A Label Studio ML-backend-style class behind the plug-in interface."""

    backend_class: ClassVar[type[Any] | None] = None
    DATA_FIELD: ClassVar[str] = "text"
    FROM_NAME: ClassVar[str] = "label"

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__(classes)
        if self.backend_class is None:
            raise PluginError(f"{type(self).__name__}.backend_class is not set: name your ML backend's class")
        self.backend = self.backend_class(label_config=self.label_config())
        self.tasks: list[dict[str, Any]] = []

    def label_config(self) -> str:
        """The labeling config the backend class is given: one text, the project's classes."""
        choices = "".join(f'<Choice value="{escape(c, quote=True)}"/>' for c in self.classes)
        return (
            f'<View><Text name="{self.DATA_FIELD}" value="${self.DATA_FIELD}"/>'
            f'<Choices name="{self.FROM_NAME}" toName="{self.DATA_FIELD}" choice="single">{choices}</Choices></View>'
        )

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.tasks = [
            {
                "id": i,
                "data": {self.DATA_FIELD: text},
                "annotations": [
                    {
                        "result": [
                            {
                                "from_name": self.FROM_NAME,
                                "to_name": self.DATA_FIELD,
                                "type": "choices",
                                "value": {"choices": [label]},
                            }
                        ]
                    }
                ],
            }
            for i, (text, label) in enumerate(zip(texts, labels, strict=True))
        ]
        self.backend.fit("START_TRAINING", {"tasks": self.tasks})

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        tasks = [{"id": i, "data": {self.DATA_FIELD: text}} for i, text in enumerate(texts)]
        answer = self.backend.predict(tasks, context=None)
        predictions = answer.get("predictions") if isinstance(answer, dict) else getattr(answer, "predictions", answer)
        if not isinstance(predictions, list) or len(predictions) != len(texts):
            raise PluginError(
                f"{self.backend_class}: predict returned {type(answer).__name__}, not one prediction a task"
            )
        return np.array([self._row(p) for p in predictions])

    def _row(self, prediction: Any) -> np.ndarray:
        """One prediction as probabilities: its score on its choice, the rest shared by the others."""
        if isinstance(prediction, list):  # several predictions for a task: the first is the model's
            prediction = prediction[0] if prediction else {}
        if hasattr(prediction, "model_dump"):  # a pydantic prediction object
            prediction = prediction.model_dump()
        if not isinstance(prediction, dict):
            raise PluginError(f"{self.backend_class}: a prediction is {type(prediction).__name__}, not a dict")
        choices = [c for r in prediction.get("result") or [] for c in ((r.get("value") or {}).get("choices") or [])]
        if not choices or choices[0] not in self.classes:
            raise PluginError(f"{self.backend_class}: a prediction's choice {choices[:1]} is not one of {self.classes}")
        score = float(prediction.get("score", 1.0))
        if not 0.0 <= score <= 1.0:
            raise PluginError(f"{self.backend_class}: a prediction's score {score} is not in [0, 1]")
        k = len(self.classes)
        if k == 1:
            return np.ones(1)
        top = max(score, 1.0 / k)  # the backend's answer stays the top one, however low its score
        row = np.full(k, (1.0 - top) / (k - 1))
        row[self.classes.index(choices[0])] = top
        return row

    def save(self, folder: Path) -> None:
        (folder / TASKS_FILE).write_text(json.dumps(self.tasks))

    @classmethod
    def load(cls, folder: Path, classes: Sequence[str]) -> LabelStudioMLPlugin:
        plugin = cls(classes)
        tasks = json.loads((folder / TASKS_FILE).read_text())
        texts = [t["data"][cls.DATA_FIELD] for t in tasks]
        labels = [t["annotations"][0]["result"][0]["value"]["choices"][0] for t in tasks]
        plugin.fit(texts, labels)
        return plugin
