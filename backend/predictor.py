"""Turns a batch of Label Studio tasks into one prediction item per task, with the serving version.

The encoder loads in the background at start-up so /health and /setup answer at once. Each
project's serving version is read from the registry's CURRENT pointer; when it changes, the new
version loads and replaces the old one by a single reference swap, so requests in flight finish
on the version they started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from backend import uncertainty
from backend.labeling import TaskError, TaskSpec, choices_result, task_text
from backend.labeling.spans import spans_result
from backend.models.encoder import TextEncoder, default_encoder_path, load_encoder
from backend.models.image_encoder import ImageEncoder, load_image_encoder
from backend.models.persist import Model, load_version
from backend.models.tagger import SpanTagger, answer_confidence, weakest_words
from backend.registry import COLD_START, Registry, RegistryError, served_name
from backend.settings import Settings

log = logging.getLogger(__name__)


class NotReady(RuntimeError):
    """The encoder is still loading (or failed to load); the message says which."""


@dataclass
class _Serving:
    version: str
    fingerprint: str
    classifier: Model | None  # a TextClassifier or a SpanTagger; None = cold start
    accept_threshold: float | None = None  # calibrated confidence above which review may be skipped
    skipped: str | None = None  # a newer version whose files could not be read (this one kept serving)
    label: str = ""  # the name Label Studio sees: the version's family (registry.served_name)

    def __post_init__(self) -> None:
        self.label = self.label or self.version


class Predictor:
    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry(settings.registry_dir)
        self._encoder: TextEncoder | None = None
        self._image_encoder: ImageEncoder | None = None
        self._image_lock = threading.Lock()
        self._load_error: str | None = None
        self._loaded = threading.Event()
        self._serving: OrderedDict[str, _Serving] = OrderedDict()  # bounded: HITL_MAX_SERVING_PROJECTS
        self._swap_lock = threading.Lock()
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)

    # lifecycle -------------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        if background:
            threading.Thread(target=self._load_encoder, name="encoder-loader", daemon=True).start()
        else:
            self._load_encoder()

    def _load_encoder(self) -> None:
        name = self.settings.model_name or default_encoder_path()
        try:
            self._encoder = load_encoder(
                name, self.settings.max_length, self.settings.batch_size, self.settings.precision
            )
        except Exception as exc:  # surfaced through /health and /predict, never a crash
            self._load_error = f"could not load encoder {name!r}: {exc}"
            log.error(self._load_error)
        finally:
            self._loaded.set()

    @property
    def ready(self) -> bool:
        return self._encoder is not None

    @property
    def load_error(self) -> str | None:
        return self._load_error

    def encoder(self, wait_s: float | None = None) -> TextEncoder:
        self._loaded.wait(self.settings.model_wait_s if wait_s is None else wait_s)
        if self._encoder is None:
            raise NotReady(self._load_error or "the encoder is still loading; retry in a few seconds")
        return self._encoder

    def image_encoder(self) -> ImageEncoder:
        """The image encoder, loaded on the first image project (none is bundled: it must be set)."""
        with self._image_lock:
            if self._image_encoder is None:
                self._image_encoder = load_image_encoder(self.settings)
            return self._image_encoder

    def encoder_for(self, spec: TaskSpec) -> TextEncoder | ImageEncoder:
        return self.image_encoder() if spec.modality == "image" else self.encoder()

    # versions --------------------------------------------------------------------------------
    def model_version(self, project: str, spec: TaskSpec) -> str:
        """The version /setup reports: from memory and one small file read, never a model load."""
        current = self.registry.current(project)
        if current is None:
            return COLD_START
        serving = self._serving.get(project)
        if serving and current in (serving.version, serving.skipped) and serving.fingerprint == spec.fingerprint():
            return serving.label if serving.classifier is not None else COLD_START
        try:
            meta = self.registry.meta(project, current)
        except (RegistryError, OSError, ValueError):
            return COLD_START
        return served_name(meta) if meta.get("spec", {}).get("fingerprint") == spec.fingerprint() else COLD_START

    def serving(self, project: str, spec: TaskSpec) -> _Serving:
        current = self.registry.current(project) or COLD_START
        serving = self._serving.get(project)
        if serving and serving.fingerprint == spec.fingerprint() and current in (serving.version, serving.skipped):
            self._serving.move_to_end(project)
            return serving
        with self._swap_lock:
            serving = self._serving.get(project)
            if serving and serving.fingerprint == spec.fingerprint() and current in (serving.version, serving.skipped):
                return serving
            loaded = self._load(project, current, spec)
            if loaded.classifier is None and current != COLD_START and serving and serving.classifier is not None \
                    and serving.fingerprint == spec.fingerprint():  # fmt: skip
                # the new version's files cannot be read: the one serving now goes on, and the broken
                # version is not tried again on every request (only when CURRENT moves on)
                serving.skipped = current
                loaded = serving
            self._serving[project] = loaded
            self._serving.move_to_end(project)
            while len(self._serving) > self.settings.max_serving_projects:  # least recently used goes
                self._serving.popitem(last=False)
            return loaded

    def _load(self, project: str, version: str, spec: TaskSpec) -> _Serving:
        if version == COLD_START:
            return _Serving(COLD_START, spec.fingerprint(), None)
        try:
            folder = self.registry.version_dir(project, version)
            meta = self.registry.meta(project, version)
            classifier = load_version(folder, meta, spec, self.encoder_for(spec))
        except NotReady:
            raise
        except Exception as exc:  # a broken or incompatible version never turns into a 500
            log.error("project %s: version %s cannot be served: %s", project, version, exc)
            return _Serving(version, spec.fingerprint(), None)
        log.info("project %s: now serving %s", project, version)
        threshold = (meta.get("routing") or {}).get("threshold")
        return _Serving(version, spec.fingerprint(), classifier, threshold, label=served_name(meta))

    # prediction ------------------------------------------------------------------------------
    def predict(self, project: str, spec: TaskSpec, tasks: list[Any]) -> list[dict[str, Any]]:
        """One item per task, in order. A task that cannot be read gets an item without ``result``,
        which Label Studio logs and skips while it keeps the rest."""
        serving = self.serving(project, spec)
        items: list[dict[str, Any] | None] = [None] * len(tasks)
        texts: list[str] = []
        positions: list[int] = []
        for i, task in enumerate(tasks):
            try:
                texts.append(task_text(task, spec, self.settings.max_text_chars))
                positions.append(i)
            except TaskError as exc:
                task_id = task.get("id") if isinstance(task, dict) else None
                items[i] = {"error": f"task {task_id}: {exc}", "model_version": serving.label}

        if serving.classifier is None:
            for i in positions:
                items[i] = {"result": [], "score": 0.0, "model_version": COLD_START}
        elif positions:
            started = time.perf_counter()
            if isinstance(serving.classifier, SpanTagger):
                self._fill_spans(items, positions, texts, serving, spec)
            elif spec.modality == "image":
                self._fill_images(items, positions, texts, serving, spec, tasks)
            else:
                self._fill(items, positions, serving.classifier.predict_proba(texts), serving, spec)
            log.info(
                "project %s: predicted %d tasks with %s in %.3fs",
                project,
                len(positions),
                serving.label,
                time.perf_counter() - started,
            )
        return [item if item is not None else {"error": "not predicted"} for item in items]

    def _fill(self, items: list, positions: list[int], probs: np.ndarray, serving: _Serving, spec: TaskSpec) -> None:
        classifier = serving.classifier
        assert classifier is not None
        multi = classifier.multi_label
        scores = uncertainty.served_score(probs, self.settings.uncertainty, multi)
        measures = uncertainty.all_measures(probs, multi)
        decisions = classifier.decide(probs, self.settings.multilabel_threshold)
        for row, i in enumerate(positions):
            items[i] = {
                "result": choices_result(spec, decisions[row]),
                "score": round(float(scores[row]), 6),
                "model_version": serving.label,
                "uncertainty": {name: round(float(v[row]), 6) for name, v in measures.items()},
            }
            if serving.accept_threshold is not None and not multi:
                items[i]["auto_accept"] = bool(probs[row].max() >= serving.accept_threshold)

    def _fill_images(
        self, items: list, positions: list[int], refs: list[str], serving: _Serving, spec: TaskSpec, tasks: list
    ) -> None:
        """Images are fetched one by one, so an image that cannot be read fails its task alone, and
        decoded one batch at a time, so a large request never holds all its images in memory."""
        encoder = serving.classifier.encoder  # type: ignore[union-attr]
        step = max(1, encoder.batch_size)
        for start in range(0, len(positions), step):
            images, readable = [], []
            for i, ref in zip(positions[start : start + step], refs[start : start + step], strict=True):
                try:
                    images.append(encoder.fetcher.fetch(ref))
                    readable.append(i)
                except TaskError as exc:
                    items[i] = {"error": f"task {tasks[i].get('id')}: {exc}", "model_version": serving.label}
            if readable:
                probs = serving.classifier.head.proba(encoder.embed_images(images))  # type: ignore[union-attr]
                self._fill(items, readable, probs, serving, spec)

    def _fill_spans(
        self, items: list, positions: list[int], texts: list[str], serving: _Serving, spec: TaskSpec
    ) -> None:
        """NER: one region per entity with its own score; the task's score is its weakest word's."""
        tagger = serving.classifier
        assert isinstance(tagger, SpanTagger)
        tagged = tagger.tag(texts)
        weakest = weakest_words(tagged, self.settings.uncertainty, len(tagger.tags))
        scores = uncertainty.served_score(weakest, self.settings.uncertainty)
        measures = uncertainty.all_measures(weakest)
        confidence = answer_confidence(tagged)
        for row, i in enumerate(positions):
            items[i] = {
                "result": spans_result(spec, tagged[row].spans, texts[row]),
                "score": round(float(scores[row]), 6),
                "model_version": serving.label,
                "uncertainty": {name: round(float(v[row]), 6) for name, v in measures.items()},
            }
            if serving.accept_threshold is not None:  # the whole answer is likely exactly right
                items[i]["auto_accept"] = bool(confidence[row] >= serving.accept_threshold)
