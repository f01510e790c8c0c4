"""Save a model (classifier or span tagger) into a registry version folder and load it back
(safetensors only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.labeling.spec import TaskSpec, spec_from_dict, spec_to_dict
from backend.models.classifier import TextClassifier
from backend.models.encoder import TextEncoder, load_encoder
from backend.models.head import LinearHead
from backend.models.plugin_model import PluginClassifier, load_plugin
from backend.models.tagger import SpanTagger
from backend.plugin import PluginError

Model = TextClassifier | SpanTagger | PluginClassifier

HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"


class IncompatibleVersion(RuntimeError):
    """A stored version cannot serve this project as configured now; the message says why."""


def write_version(
    folder: Path,
    head: LinearHead,
    spec: TaskSpec,
    encoder: TextEncoder,
    fine_tuned: bool = False,
    encoder_version: str | None = None,
) -> dict[str, Any]:
    """Write weights into ``folder``; return the metadata the registry stores beside them.
    ``encoder_version``: a head on an earlier version's fine-tuned encoder, which stays in that
    version's folder (a head refresh after a fine-tune stores only its head)."""
    head.save(folder / HEAD_FILE)
    weights = getattr(encoder, "float_weights", encoder)  # int8 is derived from the float weights stored
    if fine_tuned:
        weights.save(folder / ENCODER_DIR)
    info = {
        "source": "version" if fine_tuned or encoder_version else "base",
        "name_or_path": weights.name_or_path,
        "identity": weights.identity,
        "max_length": weights.max_length,
        "precision": "int8" if encoder.precision == "int8" else "float",
    }
    if encoder_version and not fine_tuned:
        info["version"] = encoder_version
    return {"spec": spec_to_dict(spec), "encoder": info}


def load_version(
    folder: Path, meta: dict[str, Any], spec: TaskSpec, base: TextEncoder, plugins: set[str] | None = None
) -> Model:
    """The model of a version, checked against the project's current spec and base encoder;
    ``plugins``: the model plug-ins the operator configured (a version of another is not loaded)."""
    stored = spec_from_dict(meta["spec"])
    if stored.fingerprint() != spec.fingerprint():
        raise IncompatibleVersion(
            f"version {meta.get('version')} was trained for labels {list(stored.labels)} "
            f"({stored.kind.value}); the project now has {list(spec.labels)} ({spec.kind.value})"
        )
    if "plugin" in meta:
        try:
            return load_plugin(folder, meta, stored.labels, plugins or set())
        except PluginError as exc:
            raise IncompatibleVersion(str(exc)) from exc
    info = meta["encoder"]
    if info["source"] == "version":
        home = folder.parent / info["version"] if info.get("version") else folder  # whose fine-tune it is
        encoder = load_encoder(str(home / ENCODER_DIR), base.max_length, base.batch_size, base.precision)
    else:
        if info["identity"] != base.identity:
            raise IncompatibleVersion(
                f"version {meta.get('version')} was trained on encoder {info['name_or_path']}, "
                f"but the backend now runs {base.name_or_path}"
            )
        encoder = base
    if info.get("precision") == "int8":  # the head was fitted (and calibrated) on int8 embeddings
        encoder = encoder.quantized()
    head = LinearHead.load(folder / HEAD_FILE)
    if head.num_labels != stored.num_outputs:
        raise IncompatibleVersion(f"version {meta.get('version')} head has {head.num_labels} outputs")
    if stored.is_ner:
        if not getattr(encoder.tokenizer, "is_fast", False):
            raise IncompatibleVersion(
                f"NER needs a fast tokenizer (character offsets); {encoder.name_or_path} has none"
            )
        return SpanTagger(encoder=encoder, head=head, labels=stored.labels, tags=stored.tags)
    return TextClassifier(encoder=encoder, head=head, labels=stored.labels)
