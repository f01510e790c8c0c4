"""Labeling config → task spec, using label-studio-sdk's parser (no hand-written XML walking).

A task spec is everything the model side needs to know about a project: which kind of task,
which control writes the answer (``from_name``), which object it labels (``to_name``), which key
of the task's ``data`` holds the input, and the label set in config order.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from label_studio_sdk.label_interface import LabelInterface

SUPPORTED = (
    '<Choices> (single or choice="multiple") over <Text> or <Image>, or <Labels> (named entities) over <Text>, '
    "plus an optional <TextArea> for a rationale"
)
_CONTROL_TAGS = {"choices", "labels"}
_RATIONALE_TAGS = {"textarea"}
_TEXT_OBJECTS = {"text"}
_IMAGE_OBJECTS = {"image"}


class UnsupportedConfig(ValueError):
    """The labeling config cannot be served; the message names the tag and what would work."""


class TaskKind(StrEnum):
    CLASSIFICATION = "classification"
    MULTILABEL = "multilabel"
    NER = "ner"


@dataclass(frozen=True)
class TaskSpec:
    kind: TaskKind
    from_name: str
    to_name: str
    data_key: str
    labels: tuple[str, ...]
    rationale_name: str | None = None
    modality: str = "text"  # what ``data_key`` holds: "text", or "image" (a reference to an image)

    @property
    def multi_label(self) -> bool:
        return self.kind is TaskKind.MULTILABEL

    @property
    def is_ner(self) -> bool:
        return self.kind is TaskKind.NER

    @property
    def result_type(self) -> str:
        return "labels" if self.is_ner else "choices"

    @property
    def tags(self) -> tuple[str, ...]:
        """BIO tags of an NER spec, in head order: O, then B-/I- for each entity label."""
        return ("O", *(f"{p}-{label}" for label in self.labels for p in ("B", "I")))

    @property
    def num_outputs(self) -> int:
        """Outputs of the model's head: one per tag (NER) or per label (classification)."""
        return len(self.tags) if self.is_ner else len(self.labels)

    def fingerprint(self) -> str:
        """Identifies the label space: a version trained for one spec serves only specs with this one."""
        parts = [self.kind.value, self.from_name, self.to_name, self.data_key, *self.labels]
        raw = "|".join(parts if self.modality == "text" else [*parts, self.modality])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


MAX_CONFIG_CHARS = 1_000_000
_CACHE_CHARS = 4_000_000  # the parse cache holds at most this many characters of configs
_cache: OrderedDict[str, TaskSpec] = OrderedDict()
_cache_chars = 0
_cache_lock = threading.Lock()
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_label_config(config: str) -> TaskSpec:
    """Derive the task spec; raise UnsupportedConfig with a message that says what to change.
    Parsed specs are cached (every /predict sends the config), bounded by characters, not entries."""
    global _cache_chars
    if not isinstance(config, str) or not config.strip():
        raise UnsupportedConfig("the labeling config is empty; send the project's XML labeling config")
    if len(config) > MAX_CONFIG_CHARS:
        raise UnsupportedConfig(f"the labeling config is longer than {MAX_CONFIG_CHARS} characters")
    if _DECLARATION.search(config):  # entity expansion ("billion laughs") and external entities
        raise UnsupportedConfig(
            "the labeling config has a <!DOCTYPE> or <!ENTITY> declaration; Label Studio "
            "configs never need one: remove it"
        )
    with _cache_lock:
        if config in _cache:
            _cache.move_to_end(config)
            return _cache[config]
    spec = _parse(config)
    with _cache_lock:
        if config not in _cache:
            _cache[config] = spec
            _cache_chars += len(config)
        while _cache_chars > _CACHE_CHARS and _cache:
            old, _ = _cache.popitem(last=False)
            _cache_chars -= len(old)
    return spec


def _parse(config: str) -> TaskSpec:
    try:
        interface = LabelInterface(config)
    except Exception as exc:  # the SDK raises several XML/validation error types
        raise UnsupportedConfig(f"the labeling config is not valid XML for Label Studio: {exc}") from None
    try:
        return _spec(interface)
    except UnsupportedConfig:
        raise
    except Exception as exc:  # the SDK's plain Exception, e.g. a toName that names no tag
        raise UnsupportedConfig(
            f"the labeling config does not hold together: {exc}; check that every control's "
            "toName names an object tag (<Text name=...>, <Image name=...>)"
        ) from None


def _spec(interface: LabelInterface) -> TaskSpec:

    controls = list(interface.controls)
    labelers = [c for c in controls if c.tag.lower() in _CONTROL_TAGS]
    rationales = [c for c in controls if c.tag.lower() in _RATIONALE_TAGS]
    others = [c for c in controls if c not in labelers and c not in rationales]
    if others:
        tag = others[0]
        raise UnsupportedConfig(f'<{tag.tag} name="{tag.name}"> is not supported; supported: {SUPPORTED}')
    if not labelers:
        raise UnsupportedConfig(f"the config has no <Choices> or <Labels> control; supported: {SUPPORTED}")
    if len(labelers) > 1:
        names = ", ".join(f'<{c.tag} name="{c.name}">' for c in labelers)
        raise UnsupportedConfig(f"the config has several labeling controls ({names}); one model serves one")

    control = labelers[0]
    ner = control.tag.lower() == "labels"
    if len(control.to_name) != 1:
        raise UnsupportedConfig(f'<{control.tag} name="{control.name}"> must label exactly one object (toName)')
    target = interface.get_object(control.to_name[0])
    image = target.tag.lower() in _IMAGE_OBJECTS and not ner
    if target.tag.lower() not in _TEXT_OBJECTS and not image:
        raise UnsupportedConfig(
            f'<{control.tag} name="{control.name}"> labels <{target.tag} name="{target.name}">, which is not '
            f"supported; supported: {SUPPORTED}"
        )
    if not image and str(target.attr.get("valueType", "text")).lower() == "url":
        raise UnsupportedConfig(
            f'<{target.tag} name="{target.name}" valueType="url"> is not supported: put the text itself '
            "in the task data"
        )
    data_key = target.value_name
    if not data_key:
        raise UnsupportedConfig(f'<{target.tag} name="{target.name}"> has no value="$key" naming the task data field')
    labels = tuple(control.labels)
    child, least = ("<Label>", "one") if ner else ("<Choice>", "two")
    if len(labels) < (1 if ner else 2):
        raise UnsupportedConfig(f'<{control.tag} name="{control.name}"> needs at least {least} {child} values')
    if len(set(labels)) != len(labels):
        raise UnsupportedConfig(f'<{control.tag} name="{control.name}"> has duplicate {child} values')

    multiple = str(control.attr.get("choice", "single")).lower() == "multiple"
    rationale = next((r.name for r in rationales), None)
    kind = TaskKind.NER if ner else TaskKind.MULTILABEL if multiple else TaskKind.CLASSIFICATION
    return TaskSpec(
        kind=kind,
        from_name=control.name,
        to_name=target.name,
        data_key=data_key,
        labels=labels,
        rationale_name=rationale,
        modality="image" if image else "text",
    )


def spec_to_dict(spec: TaskSpec) -> dict:
    return {
        "kind": spec.kind.value,
        "from_name": spec.from_name,
        "to_name": spec.to_name,
        "data_key": spec.data_key,
        "labels": list(spec.labels),
        "rationale_name": spec.rationale_name,
        "modality": spec.modality,
        "fingerprint": spec.fingerprint(),
    }


def spec_from_dict(data: dict) -> TaskSpec:
    return TaskSpec(
        kind=TaskKind(data["kind"]),
        from_name=data["from_name"],
        to_name=data["to_name"],
        data_key=data["data_key"],
        labels=tuple(data["labels"]),
        rationale_name=data.get("rationale_name"),
        modality=data.get("modality", "text"),
    )
