"""A model plug-in (``backend/plugin.py``) as the loop serves it: the operator's class with the
temperature calibration fitted on held-out annotations, its answers checked before use, its fit
bounded in time, and its files in a registry version folder like any other version's."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.labeling import TaskSpec
from backend.plugin import PluginError, checked_proba, load_plugin_class

PLUGIN_DIR = "plugin"


@dataclass
class PluginClassifier:
    """A fitted plug-in with its calibration: ``predict_proba`` is what annotators' scores come from."""

    plugin: Any
    name: str  # package.module:Class, as the operator configured it
    labels: tuple[str, ...]
    temperature: float = 1.0
    multi_label: bool = False  # plug-ins are single-label classifiers

    def raw_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The plug-in's own probabilities, checked (shape, finite, distributions)."""
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        try:
            probs = self.plugin.predict_proba(list(texts))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"model plug-in {self.name}: predict_proba raised {type(exc).__name__}: {exc}") from exc
        return checked_proba(probs, len(texts), len(self.labels), self.name)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities: the plug-in's, sharpened or softened by the fitted temperature."""
        return tempered(self.raw_proba(texts), self.temperature)

    def decide(self, probs: np.ndarray, threshold: float = 0.5) -> list[list[str]]:
        return [[self.labels[int(j)]] for j in probs.argmax(axis=1)]

    def embed(self, texts: Sequence[str]) -> np.ndarray | None:
        """The plug-in's vectors where it has them (None: the bundled encoder's are used)."""
        method = getattr(self.plugin, "embed", None)
        vectors = method(list(texts)) if callable(method) else None
        return None if vectors is None else np.asarray(vectors, dtype=np.float32)


def plugin_serves(spec: TaskSpec) -> bool:
    """Plug-ins classify text, one label per task; other projects keep the bundled models."""
    return spec.modality == "text" and not spec.multi_label and not spec.is_ner


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: temperature scaling applied to probabilities."""
    z = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_plugin(
    name: str, labels: Sequence[str], texts: Sequence[str], y: Sequence[str], timeout_s: float
) -> PluginClassifier:
    """A new instance of plug-in ``name`` fitted on ``texts``/``y`` within ``timeout_s``; PluginError
    (with the reason) when it cannot be loaded, raises, or runs too long."""
    cls = load_plugin_class(name)
    try:
        plugin = cls(tuple(labels))
    except Exception as exc:
        raise PluginError(f"model plug-in {name}: constructing it raised {type(exc).__name__}: {exc}") from exc
    failure: list[BaseException] = []

    def run() -> None:
        try:
            plugin.fit(list(texts), list(y))
        except BaseException as exc:  # reported below, in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"fit {name}", daemon=True)  # a hung fit dies with the job's process
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise PluginError(f"model plug-in {name}: fit ran past HITL_MODEL_TIMEOUT_S ({timeout_s:g} s)")
    if failure:
        exc = failure[0]
        raise PluginError(f"model plug-in {name}: fit raised {type(exc).__name__}: {exc}") from exc
    return PluginClassifier(plugin, name, tuple(labels))


def write_plugin(folder: Path, model: PluginClassifier) -> dict[str, Any]:
    """Save the plug-in's files into the version folder; the metadata that names it."""
    (folder / PLUGIN_DIR).mkdir()
    try:
        model.plugin.save(folder / PLUGIN_DIR)
    except Exception as exc:
        raise PluginError(f"model plug-in {model.name}: save raised {type(exc).__name__}: {exc}") from exc
    return {"plugin": {"name": model.name, "temperature": model.temperature}}


def load_plugin(folder: Path, meta: dict[str, Any], labels: Sequence[str], allowed: set[str]) -> PluginClassifier:
    """The plug-in a version was published with; only a class the operator configured is imported."""
    name = str(meta["plugin"]["name"])
    if name not in allowed:
        raise PluginError(
            f"version {meta.get('version')} was trained with model plug-in {name}, which this backend is not "
            f"configured to run ({', '.join(sorted(allowed)) or 'none'}): set HITL_MODEL, or roll back"
        )
    cls = load_plugin_class(name)
    try:
        plugin = cls.load(folder / PLUGIN_DIR, tuple(labels))
    except Exception as exc:
        raise PluginError(f"model plug-in {name}: load raised {type(exc).__name__}: {exc}") from exc
    return PluginClassifier(plugin, name, tuple(labels), float(meta["plugin"].get("temperature", 1.0)))
