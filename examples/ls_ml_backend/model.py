"""A model written the way Label Studio's ML backend examples are (``predict(tasks, context)``,
``fit(event, data)``), run in the loop through ``LabelStudioMLPlugin``.

    HITL_MODEL=examples.ls_ml_backend.model:NaiveBayesPlugin hitl run

``NaiveBayesBackend`` stands for a class a team already has: it does not import this project,
and would subclass ``label_studio_ml.model.LabelStudioMLBase`` where that package is installed.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from backend.plugins.labelstudio_ml import LabelStudioMLPlugin


class NaiveBayesBackend:
    """Bag of words and multinomial naive Bayes, in the shape of a Label Studio ML backend."""

    def __init__(self, label_config: str, **kwargs: Any) -> None:
        config = ElementTree.fromstring(label_config)
        choices = config.find(".//Choices")
        text = config.find(".//Text")
        assert choices is not None and text is not None, "a <Choices> over a <Text> is needed"
        self.from_name, self.to_name = choices.get("name"), choices.get("toName")
        self.value = re.sub(r"^\$", "", text.get("value") or "$text")
        self.labels = [c.get("value") for c in choices.findall("Choice")]
        self.model: Any = None

    def fit(self, event: str, data: dict[str, Any], **kwargs: Any) -> None:
        texts, labels = [], []
        for task in data.get("tasks") or []:
            for annotation in task.get("annotations") or []:
                for result in annotation.get("result") or []:
                    if result.get("from_name") == self.from_name and result["value"].get("choices"):
                        texts.append(task["data"][self.value])
                        labels.append(result["value"]["choices"][0])
        self.model = make_pipeline(CountVectorizer(), MultinomialNB(alpha=0.5)).fit(texts, labels)

    def predict(self, tasks: list[dict[str, Any]], context: Any = None, **kwargs: Any) -> dict[str, Any]:
        probs = self.model.predict_proba([task["data"][self.value] for task in tasks])
        predictions = []
        for row in probs:
            best = int(row.argmax())
            result = [
                {
                    "from_name": self.from_name,
                    "to_name": self.to_name,
                    "type": "choices",
                    "value": {"choices": [str(self.model.classes_[best])]},
                }
            ]
            predictions.append({"result": result, "score": float(row[best]), "model_version": "naive-bayes"})
        return {"predictions": predictions}


class NaiveBayesPlugin(LabelStudioMLPlugin):
    backend_class = NaiveBayesBackend
