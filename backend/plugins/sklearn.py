"""Any scikit-learn estimator or pipeline with ``fit``/``predict_proba`` as a model plug-in.

Subclass ``SklearnPlugin`` and write ``make_estimator``; the fitted estimator is stored with
skops, not pickle: loading a version never runs code it carries. Types skops does not trust by
default (a custom transformer of yours) are refused at load unless the subclass names them in
``trusted``: the registry is then as trusted as the code it names (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backend.plugin import ClassifierPlugin, PluginError

MODEL_FILE = "estimator.skops"


class SklearnPlugin(ClassifierPlugin):
    """A scikit-learn classifier on raw texts (a pipeline that vectorises them, as a rule)."""

    trusted: ClassVar[Sequence[str]] = ()  # types beyond skops' defaults this plug-in may load

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__(classes)
        self.estimator: Any = None

    def make_estimator(self) -> Any:
        """A new, unfitted estimator (e.g. ``make_pipeline(TfidfVectorizer(), LogisticRegression())``)."""
        raise NotImplementedError("write make_estimator() in your subclass")

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.estimator = self.make_estimator()
        self.estimator.fit(list(texts), list(labels))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The estimator's probabilities in the project's class order; a class it never saw in
        training gets 0."""
        probs = np.asarray(self.estimator.predict_proba(list(texts)), dtype=np.float64)
        out = np.zeros((len(texts), len(self.classes)))
        for column, name in enumerate(self.estimator.classes_):
            if str(name) in self.classes:
                out[:, self.classes.index(str(name))] = probs[:, column]
        return out

    def save(self, folder: Path) -> None:
        import skops.io as sio

        sio.dump(self.estimator, folder / MODEL_FILE)

    @classmethod
    def load(cls, folder: Path, classes: Sequence[str]) -> SklearnPlugin:
        import skops.io as sio

        path = folder / MODEL_FILE
        unknown = [t for t in sio.get_untrusted_types(file=path) if t not in cls.trusted]
        if unknown:
            raise PluginError(
                f"{path} holds types skops does not trust ({', '.join(unknown)}): name them in {cls.__name__}.trusted "
                "if they are your own code"
            )
        plugin = cls(classes)
        plugin.estimator = sio.load(path, trusted=list(sio.get_untrusted_types(file=path)))
        return plugin
