"""The serving version of a project, and the server's copy of it.

``load_serving`` is the one place that loads "the version serving project P": the registry's
CURRENT version, checked against the project's labeling config and base encoder, or cold start
when there is none or it cannot be read. The gate (the baseline a candidate must beat), the sync
(per pool) and the server go through it.

``Predictor`` is the server's side: the encoder loads in the background at start-up so /health
and /setup answer at once; each project's version is kept in memory and, when CURRENT moves,
the new one loads and replaces it by a single reference swap, so requests in flight finish on
the version they started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from backend.ids import ProjectId
from backend.labeling import TaskError, TaskSpec, task_text
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import TextEncoder, encoder_from_settings
from backend.models.image_encoder import ImageEncoder, load_image_encoder
from backend.models.persist import Model, load_version
from backend.models.plugin_model import PluginClassifier
from backend.models.tagger import SpanTagger
from backend.models.word_state_cache import WordStateCache
from backend.plugin import PluginError
from backend.serving.items import classification_items, span_items
from backend.serving.reasons import Why, reason
from backend.serving.routing import RoutingPolicy, policy_for
from backend.settings import Settings
from backend.stores.registry import Registry, RegistryError, served_name
from backend.stores.versions import COLD_START

log = logging.getLogger(__name__)


@dataclass
class ServingVersion:
    """A loaded version (``model`` None = cold start, or a version whose files cannot serve)."""

    version: str  # the registry's name, or COLD_START
    model: Model | None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why a version that exists cannot serve

    @property
    def label(self) -> str:
        """The name Label Studio sees: the version's family (``registry.served_name``)."""
        return served_name(self.meta) if self.model is not None and self.meta else COLD_START

    @property
    def accept_threshold(self) -> float | None:
        """Calibrated confidence at or above which review may be skipped (None: never)."""
        return (self.meta.get("routing") or {}).get("threshold")

    @property
    def preselect_level(self) -> float | None:
        """Calibrated confidence at or above which the answer is pre-selected (None: never yet)."""
        return (self.meta.get("preselect") or {}).get("level")


def load_serving(
    registry: Registry, project: ProjectId, spec: TaskSpec, base: Any, version: str | None = None
) -> ServingVersion:
    """The project's current version (or ``version``) on the ``base`` encoder, never raising for a
    version that cannot serve: that comes back with ``model`` None and the reason in ``error``."""
    version = version or registry.current(project)
    if version is None or version == COLD_START:
        return ServingVersion(COLD_START, None)
    meta: dict[str, Any] = {}
    try:
        meta = registry.meta(project, version)
        model = load_version(
            registry.version_dir(project, version), meta, spec, base, registry.allowed_plugins(project)
        )
    except Exception as exc:  # a broken or incompatible version never fails a request or a job
        log.warning("project %s: version %s cannot serve: %s", project, version, exc)
        return ServingVersion(version, None, meta, error=str(exc))
    return ServingVersion(version, model, meta)


def use_caches(model: Model, cache: EmbeddingCache, word_states: WordStateCache | None = None) -> None:
    """Let a version that runs on the cached base encoder (a head-only version) read its inputs
    from the caches: after a head retrain, scoring a pool is lookups and a matrix product."""
    if isinstance(model, SpanTagger) and model.encoder.identity == cache.encoder.identity:
        model.cache = word_states or WordStateCache(cache.folder, cache.encoder.identity, cache.encoder.dim)


def own_cache(model: TextClassifier | PluginClassifier, cache: EmbeddingCache) -> EmbeddingCache:
    """The embedding cache of the encoder ``model`` runs on: ``cache`` itself for the base encoder
    (and for a plug-in, whose neighbours and drift are the base encoder's), a fine-tuned encoder's
    own cache (same folder, its own identity) otherwise."""
    if isinstance(model, PluginClassifier) or model.encoder.identity == cache.encoder.identity:
        return cache
    return EmbeddingCache(cache.folder, model.encoder, cache.database_url)


def class_probabilities(
    model: TextClassifier | PluginClassifier,
    texts: Sequence[str],
    cache: EmbeddingCache | None = None,
    embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities, from the cache's ``embeddings`` of ``texts`` when the version runs on
    the cached encoder, else from its own (fine-tuned) encoder."""
    if isinstance(model, PluginClassifier):  # the operator's own model: its calibrated probabilities
        return model.predict_proba(list(texts))
    if cache is not None and model.encoder.identity == cache.encoder.identity:  # same weights, same embeddings
        return model.head.proba(cache.embed(list(texts)) if embeddings is None else embeddings)
    return model.predict_proba(list(texts))


class NotReady(RuntimeError):
    """The encoder is still loading (or failed to load); the message says which."""


@dataclass
class _Serving:
    """A project's loaded version, as cached in this process."""

    loaded: ServingVersion
    fingerprint: str  # of the labeling config it was checked against
    skipped: str | None = None  # a newer version whose files could not be read (this one kept serving)

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def classifier(self):  # type: ignore[no-untyped-def]
        return self.loaded.model

    @property
    def label(self) -> str:
        return self.loaded.label


class Predictor:
    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry.from_settings(settings)
        self._encoder: TextEncoder | None = None
        self._image_encoder: ImageEncoder | None = None
        self._image_lock = threading.Lock()
        self._load_error: str | None = None
        self._loaded = threading.Event()
        self._serving: OrderedDict[ProjectId, _Serving] = OrderedDict()  # bounded: HITL_MAX_SERVING_PROJECTS
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
        try:
            self._encoder = encoder_from_settings(self.settings)
        except Exception as exc:  # surfaced through /health and /predict, never a crash
            name = self.settings.model_name or "the bundled MiniLM"
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
    def model_version(self, project: ProjectId, spec: TaskSpec) -> str:
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

    def serving(self, project: ProjectId, spec: TaskSpec) -> _Serving:
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
            if (
                loaded.classifier is None
                and current != COLD_START
                and serving
                and serving.classifier is not None
                and serving.fingerprint == spec.fingerprint()
            ):
                # the new version's files cannot be read: the one serving now goes on, and the broken
                # version is not tried again on every request (only when CURRENT moves on)
                serving.skipped = current
                loaded = serving
            self._serving[project] = loaded
            self._serving.move_to_end(project)
            while len(self._serving) > self.settings.max_serving_projects:  # least recently used goes
                self._serving.popitem(last=False)
            return loaded

    def _load(self, project: ProjectId, version: str, spec: TaskSpec) -> _Serving:
        encoder = self.encoder_for(spec) if version != COLD_START else None  # NotReady propagates (503)
        loaded = load_serving(self.registry, project, spec, encoder, version)
        if loaded.model is not None:
            log.info("project %s: now serving %s", project, version)
        return _Serving(loaded, spec.fingerprint())

    # prediction ------------------------------------------------------------------------------
    def predict(self, project: ProjectId, spec: TaskSpec, tasks: list[Any]) -> list[dict[str, Any]]:
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
                items[i] = {
                    "result": [],
                    "score": 0.0,
                    "model_version": COLD_START,
                    "hitl_reason": reason(Why.REVIEW, None, None),
                }
        elif positions:
            started = time.perf_counter()
            policy = self._policy(project, serving)
            ids = [_task_id(task) for task in tasks]  # held-out tasks and audit samples go to people
            if isinstance(serving.classifier, SpanTagger):
                self._fill_spans(items, positions, texts, serving, spec, policy, ids)
            elif spec.modality == "image":
                self._fill_images(items, positions, texts, serving, spec, tasks, policy, ids)
            elif isinstance(serving.classifier, PluginClassifier):  # a plug-in's fault stays with its tasks
                answered, probs = _plugin_probs(serving.classifier, items, positions, texts, serving.label)
                if answered:
                    self._fill(items, answered, probs, serving, spec, policy, ids)
            else:
                self._fill(items, positions, serving.classifier.predict_proba(texts), serving, spec, policy, ids)
            log.info(
                "project %s: predicted %d tasks with %s in %.3fs",
                project,
                len(positions),
                serving.label,
                time.perf_counter() - started,
            )
        for item in items:  # which registry version answered (within a family, model_version stays)
            if item is not None and "error" not in item:
                item["hitl_version"] = serving.version
        return [item if item is not None else {"error": "not predicted"} for item in items]

    def _policy(self, project: ProjectId, serving: _Serving) -> RoutingPolicy:
        """How this version's predictions are routed now (two small file reads)."""
        loaded = serving.loaded
        return policy_for(
            self.settings, self.registry, project, serving.label, loaded.accept_threshold, loaded.preselect_level
        )

    def _fill(
        self,
        items: list,
        positions: list[int],
        probs: np.ndarray,
        serving: _Serving,
        spec: TaskSpec,
        policy: RoutingPolicy,
        ids: list[int | None],
    ) -> None:
        made = classification_items(
            spec,
            serving.classifier,
            serving.label,
            probs,
            self.settings.multilabel_threshold,
            policy,
            [ids[i] for i in positions],
        )
        for i, item in zip(positions, made, strict=True):
            items[i] = item

    def _fill_images(
        self,
        items: list,
        positions: list[int],
        refs: list[str],
        serving: _Serving,
        spec: TaskSpec,
        tasks: list,
        policy: RoutingPolicy,
        ids: list[int | None],
    ) -> None:
        """Images are fetched one by one, so an image that cannot be read fails its task alone, and
        decoded one batch at a time, so a large request never holds all its images in memory."""
        encoder = serving.classifier.encoder
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
                probs = serving.classifier.head.proba(encoder.embed_images(images))
                self._fill(items, readable, probs, serving, spec, policy, ids)

    def _fill_spans(
        self,
        items: list,
        positions: list[int],
        texts: list[str],
        serving: _Serving,
        spec: TaskSpec,
        policy: RoutingPolicy,
        ids: list[int | None],
    ) -> None:
        made = span_items(
            spec,
            serving.classifier,
            serving.label,
            texts,
            self.settings.uncertainty,
            policy,
            [ids[i] for i in positions],
        )
        for i, item in zip(positions, made, strict=True):
            items[i] = item


def _plugin_probs(
    model: PluginClassifier, items: list, positions: list[int], texts: list[str], label: str
) -> tuple[list[int], np.ndarray]:
    """A plug-in's probabilities for the batch; when the batch fails, task by task, so one task it
    cannot answer gets an error item and the rest are served."""
    try:
        return positions, model.predict_proba(texts)
    except PluginError as exc:
        log.warning("%s; answering task by task", exc)
    answered, rows = [], []
    for i, text in zip(positions, texts, strict=True):
        try:
            rows.append(model.predict_proba([text])[0])
            answered.append(i)
        except PluginError as exc:
            items[i] = {"error": str(exc), "model_version": label}
    return answered, np.array(rows).reshape(len(rows), len(model.labels))


def _task_id(task: Any) -> int | None:
    """A task's Label Studio id, when it has a usable one."""
    value = task.get("id") if isinstance(task, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
