"""``hitl bench encoders --alternative X``: is another encoder a better base than the shipped one?

Both encoders embed the same random labels and the product's head recipe is fitted on each
(``learning.head_selection``: L2 chosen on the held-out split of ``learning.dataset.split``).
Accuracy is read on a validation split carved from train (what a choice may rest on) and on the
test set (for reference); cost is texts embedded per second on this machine. ``X`` is a local
transformers folder (anything ``HITL_MODEL_NAME`` takes) or ``wordllama`` (static token
embeddings shipped as safetensors in the PyPI wheel: ``pip install wordllama``). A fine-tune is
compared by ``hitl bench finetune``; a static encoder cannot be fine-tuned.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from backend.labeling.examples import Example
from backend.learning.dataset import split
from backend.learning.head_selection import fit_selected_head
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings, load_encoder
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir
from backend.tools.simulate import load_split

Embed = Callable[[list[str]], np.ndarray]


def wordllama_embed() -> Embed:
    """WordLlama's 256-dimensional model from its wheel, offline (never downloads)."""
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError as exc:
        raise SystemExit("--alternative wordllama needs the package: pip install wordllama") from exc
    shipped = Path(wordllama.__file__).parent
    # its loader looks for the shipped tokenizer under tokenizer/ but the wheel has tokenizers/: point a cache at it
    cache = Path(tempfile.mkdtemp(prefix="wordllama-"))
    (cache / "tokenizers").mkdir()
    for config in (shipped / "tokenizers").glob("*.json"):
        (cache / "tokenizers" / config.name).symlink_to(config)
    model = WordLlama.load(cache_dir=cache, disable_download=True)
    return lambda texts: np.asarray(model.embed(texts), dtype=np.float32)


def alternative_embed(name: str, settings: Settings) -> tuple[Embed, Embed]:
    """(uncached, cached) embedding of texts by the alternative."""
    if name == "wordllama":
        embed = wordllama_embed()
        return embed, embed
    if not Path(name).is_dir():
        raise SystemExit(f"--alternative: {name!r} is neither 'wordllama' nor a local model folder")
    encoder = load_encoder(name, settings.max_length, settings.batch_size, settings.precision)
    return encoder.embed, EmbeddingCache(settings.data_dir / "cache", encoder).embed


def rate(embed: Embed, texts: list[str]) -> float:
    """Texts embedded per second (uncached)."""
    started = time.perf_counter()
    embed(texts)
    return len(texts) / (time.perf_counter() - started)


def embed_all(embed: Embed, texts: list[str], chunk: int = 512) -> np.ndarray:
    return np.concatenate([embed(texts[i : i + chunk]) for i in range(0, len(texts), chunk)])


def head_accuracy(
    x: np.ndarray,
    y: np.ndarray,
    labeled: list[int],
    rows: list[Example],
    holdout: float,
    eval_sets: list[tuple[np.ndarray, np.ndarray]],
) -> list[float]:
    """The product's head recipe fitted on the ``labeled`` rows; accuracy on each evaluation set."""
    examples = [rows[i] for i in labeled]
    train, held = split(examples, holdout)
    t = np.array([ex.task_id for ex in train])
    h = np.array([ex.task_id for ex in held], dtype=np.int64)
    head = fit_selected_head(x[t], y[t], x[h], y[h], int(y.max()) + 1, multi_label=False).head
    return [float((head.proba(ex).argmax(axis=1) == ey).mean()) for ex, ey in eval_sets]


def bench_encoders(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset)
    train, train_labels = load_split(folder, "train", args.pool)
    test, test_labels = load_split(folder, "test", None)
    names = sorted(set(train_labels))
    y = np.array([names.index(label) for label in train_labels])
    kept = [i for i, label in enumerate(test_labels) if label in names][: args.test_size]
    test, y_test = [test[i] for i in kept], np.array([names.index(test_labels[i]) for i in kept])
    rows = [Example(text, (label,), i) for i, (text, label) in enumerate(zip(train, train_labels, strict=True))]
    order = np.random.default_rng(10_000).permutation(len(train))  # validation carved from train, as bench finetune
    validation, rest = order[: args.validation], order[args.validation :]
    shipped = encoder_from_settings(settings)
    encoders = {
        "shipped": (shipped.embed, EmbeddingCache(settings.data_dir / "cache", shipped).embed),
        args.alternative: alternative_embed(args.alternative, settings),
    }
    print(
        f"{args.dataset}: {args.labels} random labels per draw, validation {len(validation)}, test {len(test)}, "
        f"seeds {args.seeds}; the product's head on each encoder's embeddings"
    )
    medians: dict[str, dict[str, float]] = {}
    for name, (uncached, embed) in encoders.items():
        speed = rate(uncached, [train[i] for i in validation])
        x, x_test = embed_all(embed, train), embed_all(embed, test)
        val, tst = [], []
        for seed in range(args.seeds):
            labeled = [int(i) for i in np.random.default_rng(seed).permutation(rest)[: args.labels]]
            v, t = head_accuracy(
                x, y, labeled, rows, settings.holdout_fraction, [(x[validation], y[validation]), (x_test, y_test)]
            )
            val.append(v)
            tst.append(t)
        medians[name] = {"validation": statistics.median(val), "test": statistics.median(tst), "rate": speed}
        print(
            f"{name}: dimension {x.shape[1]}, {speed:,.0f} texts/s; validation {medians[name]['validation']:.4f}, "
            f"test {medians[name]['test']:.4f} (draws: {', '.join(f'{v:.3f}' for v in val)})"
        )
    alt, base = medians[args.alternative], medians["shipped"]
    print(f"validation_gain={alt['validation'] - base['validation']:.4f} speed_ratio={alt['rate'] / base['rate']:.2f}")
    return 0
