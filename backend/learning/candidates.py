"""A retrain's candidate: fit it for the task kind, calibrate it once the gate lets it ship, and
publish it as a registry version.

``jobs/retrain.py`` runs these in order; the gate (``gate.py``) scores the candidate and the
serving version the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.ids import JobKind
from backend.labeling import TaskSpec
from backend.labeling.examples import Example, fingerprint, targets
from backend.labeling.spec import spec_to_dict
from backend.learning.calibration import (
    Routing,
    cross_fit_temperature,
    expected_calibration_error,
    fit_temperature,
    precision_threshold,
    reliability,
    softmax,
)
from backend.learning.gate import score
from backend.learning.head_selection import HeadChoice, fit_selected_head
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import TextEncoder, int8_allowed
from backend.models.finetune import finetune
from backend.models.head import LinearHead
from backend.models.persist import write_version
from backend.models.plugin_model import PluginClassifier, fit_plugin, plugin_serves, write_plugin
from backend.models.tagger import SpanTagger, answer_confidence, finetune_tagger, fit_tagger, tag_ids
from backend.models.word_state_cache import WordStateCache
from backend.serving.presentation import level_in_force
from backend.settings import Settings
from backend.stores.registry import ANY_BASELINE, Registry

log = logging.getLogger(__name__)

INT8_ECE_TOLERANCE = 0.02  # how much worse an int8 twin's held-out calibration error may be


@dataclass
class Candidate:
    """A model fitted by one retrain, with what the gate, calibration and publish need."""

    kind: JobKind
    model: TextClassifier | SpanTagger | PluginClassifier
    train: list[Example]  # what it was fitted on (inputs that could not be read left out)
    held: list[Example]  # what it is judged on, with the serving version
    metrics: dict[str, Any]  # its held-out scores (``gate.score``)
    fine_tuned: bool  # its encoder is new (stored with the version) rather than the base encoder
    x_train: np.ndarray | None = None  # classification: the embeddings its head was fitted on
    x_held: np.ndarray | None = None
    head_choice: HeadChoice | None = None
    encoder_version: str | None = None  # a head on this earlier version's fine-tuned encoder

    @property
    def head(self) -> LinearHead:
        return self.model.head

    @property
    def encoder(self) -> Any:
        return self.model.encoder


def fit_candidate(
    spec: TaskSpec,
    kind: JobKind,
    train: list[Example],
    held: list[Example],
    cache: EmbeddingCache,
    settings: Settings,
    word_states: WordStateCache | None = None,
    encoder_version: str | None = None,
    plugin: str = "",
) -> Candidate:
    """``plugin``: the operator's model plug-in (``package.module:Class``), for single-label text
    projects; PluginError when it fails (the caller refuses the candidate with the reason).
    ``head``: a head on ``cache``'s encoder's embeddings (seconds): the base encoder, or, with
    ``encoder_version``, the fine-tuned encoder of that earlier version. ``full``: a fine-tuned
    encoder (text) or tagger (NER) with a head on it (minutes). Image encoders are not fine-tuned:
    their ``full`` retrain is a head retrain."""
    if plugin and plugin_serves(spec):  # the operator's model, fitted from scratch whatever the kind
        model = fit_plugin(
            plugin, spec.labels, [ex.text for ex in train], [ex.labels[0] for ex in train], settings.model_timeout_s
        )
        return Candidate(kind, model, train, held, score(model, held, spec), False)
    fine_tuned = kind == JobKind.FULL and spec.modality == "text"
    if spec.is_ner:
        texts, spans = [ex.text for ex in train], [ex.spans for ex in train]
        if fine_tuned:
            tagger = finetune_tagger(cache.encoder, spec, texts, spans, epochs=settings.finetune_epochs, seed=0)
        else:
            tagger = fit_tagger(cache.encoder, spec, texts, spans, cache=word_states)
        return Candidate(kind, tagger, train, held, score(tagger, held, spec), fine_tuned)
    if fine_tuned:
        encoder: Any = tune_encoder(cache.encoder, spec, train, settings)
        x_train, x_held = encoder.embed([ex.text for ex in train]), encoder.embed([ex.text for ex in held])
    else:
        encoder = cache.encoder
        train, x_train = _readable(cache, train)
        held, x_held = _readable(cache, held)
    choice = fit_selected_head(
        x_train, targets(train, spec), x_held, targets(held, spec), len(spec.labels), spec.multi_label
    )
    model = TextClassifier(encoder=encoder, head=choice.head, labels=spec.labels)
    metrics = score(model, held, spec, settings.multilabel_threshold, embeddings=x_held)
    return Candidate(
        kind, model, train, held, metrics, fine_tuned, x_train, x_held, choice, None if fine_tuned else encoder_version
    )


def tune_encoder(start: TextEncoder, spec: TaskSpec, train: list[Example], settings: Settings) -> TextEncoder:
    """A text classifier's fine-tune recipe (HITL_FINETUNE_EPOCHS, _LR, _MIN_STEPS), for retrains and their
    replay (NER's is ``models.tagger.finetune_tagger``)."""
    return finetune(
        start,
        spec,
        train,
        epochs=settings.finetune_epochs,
        lr=settings.finetune_lr,
        min_steps=settings.finetune_min_steps,
        seed=0,
    )


def _readable(cache: EmbeddingCache, examples: list[Example]) -> tuple[list[Example], np.ndarray]:
    """Examples whose input can be read, with their embeddings; an image that cannot be fetched is
    left out of this retrain (with a warning) rather than failing it."""
    readable, x = cache.embed_readable([ex.text for ex in examples])
    return [ex for ex, ok in zip(examples, readable, strict=True) if ok], x[readable]


def choose_precision(
    candidate: Candidate,
    spec: TaskSpec,
    settings: Settings,
    cache_of: Callable[[TextEncoder], EmbeddingCache] | None = None,
) -> tuple[Candidate, dict[str, Any]]:
    """The candidate that serves int8 where that is safe, and the record ``meta.json`` keeps.

    A text classifier gets an int8 twin: the same head (same penalty) refitted on the int8
    encoder's embeddings, so it is calibrated on the embeddings that will serve. The twin serves
    when, on the held-out annotations, its score is at most ``int8_margin`` below the float
    head's and its calibration error (temperature fitted there) at most ``INT8_ECE_TOLERANCE``
    above; with fewer than ``gate_min_eval`` held-out annotations there is no evidence, and float
    serves."""
    model = candidate.model
    if not int8_allowed(settings.precision) or not isinstance(model, TextClassifier) or spec.modality != "text":
        return candidate, {}
    q = model.encoder.quantized()
    texts_train, texts_held = [ex.text for ex in candidate.train], [ex.text for ex in candidate.held]
    embed = cache_of(q).embed if cache_of is not None and not candidate.fine_tuned else q.embed
    x_train, x_held = embed(texts_train), embed(texts_held)
    l2 = candidate.head_choice.l2 if candidate.head_choice else None
    head = LinearHead.fit(
        x_train,
        targets(candidate.train, spec),
        len(spec.labels),
        spec.multi_label,
        **({"l2": l2} if l2 is not None else {}),
    )
    twin = TextClassifier(encoder=q, head=head, labels=spec.labels)
    metrics = score(twin, candidate.held, spec, settings.multilabel_threshold, embeddings=x_held)
    record: dict[str, Any] = {
        "serving": "float",
        "heldout": len(candidate.held),
        "float_primary": candidate.metrics.get("primary"),
        "int8_primary": metrics.get("primary"),
    }
    if candidate.held:
        float_probs, int8_probs = model.head.proba(candidate.x_held), head.proba(x_held)
        same = [a == b for a, b in zip(model.decide(float_probs), twin.decide(int8_probs), strict=True)]
        record["agreement"] = round(float(np.mean(same)), 4)  # top-1 (or label set) agreement, held-out
    if len(candidate.held) < settings.gate_min_eval:
        record["reason"] = f"only {len(candidate.held)} held-out annotations: float serves"
        return candidate, record
    worse = candidate.metrics["primary"] - metrics["primary"]
    ece_float, ece_int8 = (
        _heldout_ece(h, x, candidate.held, spec) for h, x in ((model.head, candidate.x_held), (head, x_held))
    )
    record.update(heldout_ece_float=ece_float, heldout_ece_int8=ece_int8)
    worse_calibrated = ece_float is not None and ece_int8 is not None and ece_int8 > ece_float + INT8_ECE_TOLERANCE
    if worse > settings.int8_margin or worse_calibrated:
        record["reason"] = f"int8 held-out score {-worse:+.4f}, ECE {ece_int8} vs {ece_float}: float serves"
        return candidate, record
    record.update(serving="int8", reason=f"int8 held-out score {-worse:+.4f} (margin {settings.int8_margin})")
    choice = dataclasses.replace(candidate.head_choice, head=head) if candidate.head_choice else None
    return dataclasses.replace(
        candidate, model=twin, metrics=metrics, x_train=x_train, x_held=x_held, head_choice=choice
    ), record


def _heldout_ece(head: LinearHead, x_held: np.ndarray | None, held: list[Example], spec: TaskSpec) -> float | None:
    """Calibration error on the held-out annotations after a temperature fitted there (single-label)."""
    if spec.multi_label or x_held is None or not len(held):
        return None
    logits, y = head.logits(x_held), targets(held, spec)
    return round(expected_calibration_error(softmax(logits, fit_temperature(logits, y)), y), 4)


def calibrate(candidate: Candidate, spec: TaskSpec, settings: Settings) -> dict[str, Any]:
    """Calibration and routing threshold of a candidate the gate let through (in place: the
    temperature is set on its head); the metadata the version records about them."""
    if isinstance(candidate.model, SpanTagger):
        return calibrate_tagger(candidate.model, spec, candidate.held, settings)
    if isinstance(candidate.model, PluginClassifier):
        return calibrate_plugin(candidate.model, spec, candidate.held, settings)
    assert candidate.head_choice is not None and candidate.x_train is not None
    return {
        "head": candidate.head_choice.as_dict(),
        **calibrate_head(
            candidate.head,
            spec,
            candidate.x_train,
            targets(candidate.train, spec),
            candidate.x_held,
            candidate.held,
            settings,
            l2=candidate.head_choice.l2,
        ),
    }


def publish_candidate(
    registry: Registry,
    project: int,
    spec: TaskSpec,
    candidate: Candidate,
    examples: Sequence[Example],
    extra: dict[str, Any],
    training: dict[str, Any],
    expected_current: str | None,
) -> str:
    """Publish the candidate the gate judged (compare-and-swap on the version it was judged against)."""
    if isinstance(candidate.model, PluginClassifier):
        model = candidate.model
        return publish_model(
            registry,
            project,
            spec,
            lambda folder: write_plugin(folder, model),
            examples,
            "plugin",
            extra,
            training,
            expected_current,
        )
    return publish_head(
        registry,
        project,
        spec,
        candidate.encoder,
        candidate.head,
        examples,
        extra=extra,
        training=training,
        fine_tuned=candidate.fine_tuned,
        expected_current=expected_current,
        encoder_version=candidate.encoder_version,
    )


def calibrate_tagger(tagger: SpanTagger, spec: TaskSpec, held: list[Example], settings: Settings) -> dict[str, Any]:
    """Temperature-scale the tag head on the held-out annotations' word tags (an unbiased sample:
    the sync serves held-out tasks in random order), then find the routing threshold on whole
    answers: the lowest answer confidence (its least sure word) at which held-out answers are
    exactly right (every entity's start, end and type) at the target precision."""
    if len(held) < 10:
        return {}
    words, inputs = tagger.word_inputs([ex.text for ex in held])
    logits = [tagger.head.logits(x) for x in inputs if len(x)]
    gold = [tag_ids(spec, w, ex.spans) for w, x, ex in zip(words, inputs, held, strict=True) if len(x)]
    if not logits:
        return {}
    z, y = np.concatenate(logits), np.concatenate(gold)
    t = fit_temperature(z, y)
    tagger.head.temperature = t
    result: dict[str, Any] = {
        "calibration": {
            "temperature": round(t, 4),
            "method": "temperature on held-out word tags",
            "heldout_word_ece_before": round(expected_calibration_error(softmax(z), y), 4),
            "heldout_word_ece_after": round(expected_calibration_error(softmax(z, t), y), 4),
            "reliability_after": [[round(c, 4), round(a, 4), n] for c, a, n in reliability(softmax(z, t), y, bins=10)],
        }
    }
    tagged = tagger.tag([ex.text for ex in held])
    exact = np.array(
        [{s.key for s in t.spans} == {s.key for s in ex.spans} for t, ex in zip(tagged, held, strict=True)]
    )
    result.update(review_levels(answer_confidence(tagged), exact, settings))
    return result


def calibrate_plugin(
    model: PluginClassifier, spec: TaskSpec, held: list[Example], settings: Settings
) -> dict[str, Any]:
    """Temperature-scale a plug-in's probabilities on the held-out annotations (in place), then find
    its routing threshold and pre-select level there, as for the bundled model's head."""
    if len(held) < 10:
        return {}
    raw, y = model.raw_proba([ex.text for ex in held]), targets(held, spec)
    logits = np.log(np.clip(raw, 1e-12, 1.0))
    model.temperature = fit_temperature(logits, y)
    after = softmax(logits, model.temperature)
    result: dict[str, Any] = {
        "calibration": {
            "temperature": round(model.temperature, 4),
            "method": "temperature on the plug-in's held-out log-probabilities",
            "heldout_ece_before": round(expected_calibration_error(raw, y), 4),
            "heldout_ece_after": round(expected_calibration_error(after, y), 4),
            "reliability_after": [[round(c, 4), round(a, 4), n] for c, a, n in reliability(after, y, bins=10)],
        },
    }
    result.update(review_levels(after.max(axis=1), after.argmax(axis=1) == y, settings))
    return result


def calibrate_head(
    head: LinearHead,
    spec: TaskSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_held: np.ndarray | None,
    held: Sequence[Example],
    settings: Settings,
    l2: float | None = None,
) -> dict[str, Any]:
    """Temperature-scale ``head`` in place and find the routing threshold (single-label only).
    ``l2``: the head's penalty, for the cross-fitted heads of a small project."""
    if spec.multi_label or len(y_train) < 10:
        return {}
    y_held = targets(held, spec)
    held_logits = head.logits(x_held) if len(held) else None
    t = cross_fit_temperature(x_train, y_train, len(spec.labels), held_logits, y_held if len(held) else None, l2=l2)
    head.temperature = t
    result: dict[str, Any] = {"calibration": {"temperature": round(t, 4), "method": "cross-fitted temperature"}}
    if held_logits is not None:
        before, after = softmax(held_logits), softmax(held_logits, t)
        result["calibration"].update(
            heldout_ece_before=round(expected_calibration_error(before, y_held), 4),
            heldout_ece_after=round(expected_calibration_error(after, y_held), 4),
            reliability_after=[[round(c, 4), round(a, 4), n] for c, a, n in reliability(after, y_held, bins=10)],
        )
        result.update(review_levels(after.max(axis=1), after.argmax(axis=1) == y_held, settings))
    return result


def review_levels(confidence: np.ndarray, correct: np.ndarray, settings: Settings) -> dict[str, Any]:
    """A version's two levels on its held-out answers (each task's calibrated confidence, and whether
    its answer was right): the pre-select level, and the routing threshold at or above which an
    answer skips review (``serving/routing.py``). An answer skips review only where it would be
    pre-filled if a person opened it: the page never calls "unsure" what the router accepts unseen.
    So the threshold is raised to the pre-select level in force, and there is none while the
    version has no pre-select level."""
    levels: dict[str, Any] = {"preselect": preselect_level(confidence, correct, settings)}
    if settings.routing_target_precision <= 0:
        return levels
    found = precision_threshold(confidence, correct, settings.routing_target_precision)
    raw = found.threshold
    floor = level_in_force(levels["preselect"]["level"], settings.preselect_precision)
    if raw is not None and (floor is None or floor > raw):
        above = confidence >= floor if floor is not None else np.zeros(len(confidence), dtype=bool)
        precision = float(correct[above].mean()) if above.any() else None
        found = Routing(floor, found.target_precision, precision, float(above.mean()) if len(above) else 0.0)
    levels["routing"] = {**dataclasses.asdict(found), "raised_to_preselect_level": found.threshold != raw}
    return levels


def preselect_level(confidence: np.ndarray, correct: np.ndarray, settings: Settings) -> dict[str, Any]:
    """The calibrated confidence at or above which this version's answers are pre-selected
    (``serving/presentation.py``): where its held-out pre-annotations at or above it were right at
    least ``HITL_PRESELECT_PRECISION`` of the time, and never below that precision itself. The queues
    serve the tasks nearest the level (the least sure first), so what counts is how often an answer
    *at* the level is right, which a calibrated confidence states; the held-out share above it is an
    average over surer ones too (a replay measured 75 % right at a level set by the average alone)."""
    found = precision_threshold(confidence, correct, settings.preselect_precision, settings.preselect_min_support)
    level = None if found.threshold is None else max(found.threshold, settings.preselect_precision)
    above = confidence >= level if level is not None else np.zeros(len(confidence), dtype=bool)
    return {
        "level": level,
        "target_precision": settings.preselect_precision,
        "heldout_precision": float(correct[above].mean()) if above.any() else None,
        "heldout_coverage": float(above.mean()) if len(above) else 0.0,
    }


def fit_head(
    encoder: TextEncoder, spec: TaskSpec, examples: Sequence[Example], embeddings: np.ndarray | None = None
) -> LinearHead:
    if embeddings is None:
        embeddings = encoder.embed([ex.text for ex in examples])
    return LinearHead.fit(embeddings, targets(examples, spec), len(spec.labels), spec.multi_label)


def publish_head(
    registry: Registry,
    project: str,
    spec: TaskSpec,
    encoder: TextEncoder,
    head: LinearHead,
    examples: Sequence[Example],
    extra: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    fine_tuned: bool = False,
    make_current: bool = True,
    expected_current: str | object | None = ANY_BASELINE,
    encoder_version: str | None = None,
) -> str:
    """Publish ``head`` (and the encoder, when fine-tuned) as a new version; ``examples`` are the
    annotations this version accounts for, ``training`` adds to its training record;
    ``encoder_version``: the earlier version whose fine-tuned encoder the head sits on."""

    def write(folder: Path) -> dict[str, Any]:
        return write_version(folder, head, spec, encoder, fine_tuned=fine_tuned, encoder_version=encoder_version)

    kind = "full" if fine_tuned else "head"
    return publish_model(
        registry, project, spec, write, examples, kind, extra, training, expected_current, make_current=make_current
    )


def publish_model(
    registry: Registry,
    project: str | int,
    spec: TaskSpec,
    write: Callable[[Path], dict[str, Any]],
    examples: Sequence[Example],
    kind: str,
    extra: dict[str, Any] | None,
    training: dict[str, Any] | None,
    expected_current: str | object | None,
    make_current: bool = True,
) -> str:
    """Publish what ``write(folder)`` stores, with the training record every version carries: the
    annotations it accounts for (their fingerprint: the next retrain's "anything new?")."""

    def write_all(folder: Path) -> dict[str, Any]:
        meta = {"spec": spec_to_dict(spec), **write(folder)}
        meta["training"] = {
            "kind": kind,
            "examples": len(examples),
            "fingerprint": fingerprint(examples),
            "task_ids": sorted({ex.task_id for ex in examples if ex.task_id is not None}),
            "annotation_ids": sorted({ex.annotation_id for ex in examples if ex.annotation_id is not None}),
            **(training or {}),
        }
        meta.update(extra or {})
        return meta

    return registry.publish(project, write_all, make_current=make_current, expected_current=expected_current)
