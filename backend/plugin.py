"""Bring your own model: the interface a classifier implements to get the whole loop (the queue, the
gate, calibration, routing, audits and oversight) that the bundled encoder gets.

A plug-in is a class, named by the operator (``HITL_MODEL=package.module:Class`` for the
deployment, ``hitl configs load … --model package.module:Class`` for one project), never by
anything Label Studio sends. The loop constructs it with the project's classes, in the labeling
config's order, and calls:

- ``fit(texts, labels)``: train from scratch on the annotated tasks' texts and their labels (one
  class name per text);
- ``predict_proba(texts)``: an array (len(texts), len(classes)) of probabilities in ``classes``
  order; the loop calibrates them (a temperature fitted on held-out annotations) before anyone
  sees them;
- ``save(folder)`` / ``load(folder, classes)``: write the fitted model into a new, empty version
  folder of the registry and read it back on any host that serves it;
- optionally ``embed(texts)``: an array (len(texts), d); without it, diversity and drift use the
  bundled encoder's embeddings.

Subclass ``ClassifierPlugin`` or write a class of the same shape. A plug-in that raises, runs past
``HITL_MODEL_TIMEOUT_S``, or returns the wrong shape, NaN or probabilities that do not sum to one
only fails its own candidate (refused by the gate, the reason in the audit store) or its own
tasks (``/predict`` answers per-task errors); the serving version keeps serving.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED = ("fit", "predict_proba", "save", "load")
NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


class PluginError(RuntimeError):
    """A plug-in cannot be loaded or misbehaved; the message says what and what to do."""


class ClassifierPlugin(ABC):
    """A text classifier the loop can train, judge, calibrate and serve."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)

    @abstractmethod
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        """Train from scratch on ``texts`` with one class name each."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities (len(texts), len(classes)), rows summing to one, in ``classes`` order."""

    def embed(self, texts: Sequence[str]) -> np.ndarray | None:
        """Optional: vectors (len(texts), d) for diversity and drift; None uses the bundled encoder's."""
        return None

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the fitted model into ``folder`` (new and empty)."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, classes: Sequence[str]) -> ClassifierPlugin:
        """The model ``save`` wrote into ``folder``."""


def load_plugin_class(name: str) -> type[Any]:
    """The class ``package.module:Class`` names, checked for the interface's methods."""
    if not NAME.match(name):
        raise PluginError(f"HITL_MODEL {name!r} is not package.module:Class (e.g. examples.tfidf.model:TfidfLogReg)")
    module_name, class_name = name.split(":")
    try:
        module = _import(module_name)
    except ImportError as exc:
        raise PluginError(
            f"model plug-in {name}: cannot import {module_name} ({exc}); install it, or run from the folder "
            "that holds it (it must be importable by the server and the workers alike)"
        ) from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise PluginError(f"model plug-in {name}: {module_name} has no class {class_name}")
    missing = [method for method in REQUIRED if not callable(getattr(cls, method, None))]
    if missing:
        raise PluginError(f"model plug-in {name}: {class_name} lacks {', '.join(missing)} (see backend/plugin.py)")
    return cls


def _import(module_name: str) -> Any:
    """The module, from the installed packages or else from the current folder (``python -m``
    puts it on the path, the ``hitl`` script does not: the operator's own folder either way)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != module_name.split(".")[0] or here in sys.path:
            raise
        sys.path.append(here)  # after the installed packages: never shadows one
        return importlib.import_module(module_name)


def checked_proba(probs: Any, n: int, k: int, name: str) -> np.ndarray:
    """A plug-in's ``predict_proba`` answer, refused unless it is (n, k), finite and each row a distribution."""
    try:
        array = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"model plug-in {name}: predict_proba returned {type(probs).__name__}, not numbers") from exc
    if array.shape != (n, k):
        raise PluginError(f"model plug-in {name}: predict_proba returned shape {array.shape}, expected ({n}, {k})")
    if not np.isfinite(array).all():
        raise PluginError(f"model plug-in {name}: predict_proba returned NaN or infinite values")
    if n and (array.min() < -1e-6 or np.abs(array.sum(axis=1) - 1).max() > 1e-3):
        raise PluginError(f"model plug-in {name}: predict_proba rows are not probabilities summing to one")
    return np.clip(array, 0.0, 1.0)
