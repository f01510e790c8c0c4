"""Named-entity tagging: the shared encoder's token states + a linear head over BIO tags.

This is token classification as ``AutoModelForTokenClassification`` does it (encoder, then one
linear layer per token), split so the two speeds of learning work as for classification: the fast
path fits the head on frozen word states in seconds; the slow path fine-tunes the encoder with it.
One tag is decided per word, at the word's first sub-token (``labeling/spans.py`` explains why).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from backend.labeling.spans import Span, spans_to_tags, tags_to_spans
from backend.labeling.spec import TaskSpec
from backend.models import uncertainty
from backend.models.encoder import TextEncoder
from backend.models.head import LinearHead
from backend.models.tuning import step, training_device, tuned_encoder
from backend.models.word_state_cache import WordStateCache

# Most words are outside any entity; weighting the O tag down in the loss trades a little precision
# for much more recall (measured on WNUT-17: README, "Benchmarks", hitl bench ner).
O_WEIGHT = 0.3


def tag_weights(spec: TaskSpec) -> np.ndarray:
    return np.r_[O_WEIGHT, np.ones(len(spec.tags) - 1)].astype(np.float32)


@dataclass(frozen=True)
class Words:
    """A text's words as the encoder sees them: character ranges, the first sub-token of each, and
    each word's surface shape (``shape_features``)."""

    ids: list[int]
    ranges: list[tuple[int, int]]
    first_token: list[int]
    shape: np.ndarray  # (words, SHAPE_FEATURES)


SHAPE_FEATURES = 6


def shape_features(text: str, ranges: Sequence[tuple[int, int]]) -> np.ndarray:
    """What an uncased encoder cannot see but entities show: capitalised, all caps, digits, an
    @/# right before the word, first word, glued to the previous word. (What they add on WNUT-17:
    README, "Benchmarks".)"""
    out = np.zeros((len(ranges), SHAPE_FEATURES), dtype=np.float32)
    for i, (start, end) in enumerate(ranges):
        word = text[start:end]
        before = text[start - 1] if start > 0 else " "
        out[i] = [
            word[:1].isupper(),
            len(word) > 1 and word.isupper(),
            any(c.isdigit() for c in word),
            before in "@#",
            i == 0,
            not before.isspace(),
        ]
    return out


@dataclass(frozen=True)
class Tagged:
    """One text's prediction: entity spans and the tag distribution of every word."""

    words: Words
    probs: np.ndarray  # (words, tags)
    spans: list[Span]


def split_words(encoder: TextEncoder, texts: Sequence[str]) -> list[Words]:
    """Tokenize with offsets; words past ``max_length`` tokens are cut (and get no prediction)."""
    if not getattr(encoder.tokenizer, "is_fast", False):
        raise ValueError(f"NER needs a fast tokenizer (character offsets); {encoder.name_or_path} has none")
    enc = encoder.tokenizer(
        list(texts), truncation=True, max_length=encoder.max_length, return_offsets_mapping=True, padding=False
    )
    out = []
    for i in range(len(texts)):
        ranges: list[list[int]] = []
        first: list[int] = []
        last_word = None
        for t, (word, (start, end)) in enumerate(zip(enc.word_ids(i), enc["offset_mapping"][i], strict=True)):
            if word is None:
                continue
            if word != last_word:
                ranges.append([start, end])
                first.append(t)
                last_word = word
            else:
                ranges[-1][1] = end
        spans = [(s, e) for s, e in ranges]
        out.append(Words(enc["input_ids"][i], spans, first, shape_features(texts[i], spans)))
    return out


def word_states(
    encoder: TextEncoder, words: Sequence[Words], model: torch.nn.Module | None = None, batch_size: int | None = None
) -> list[torch.Tensor]:
    """The state of each word's first sub-token, per text, in length-sorted batches. Without a
    ``model`` this is inference (no grad, bfloat16 where the CPU has it)."""
    out: list[torch.Tensor] = [torch.zeros(0)] * len(words)
    order = np.argsort([len(w.ids) for w in words], kind="stable")
    batch_size = batch_size or encoder.batch_size
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        hidden, _ = encoder.hidden_states([words[i].ids for i in idx], model=model)
        for row, i in enumerate(idx):
            out[i] = hidden[row, words[i].first_token]
    return out


def _frozen_states(
    encoder: TextEncoder, words: Sequence[Words], texts: Sequence[str], cache: WordStateCache | None = None
) -> list[np.ndarray]:
    """Head inputs: the frozen word states (through ``cache`` when given) with the words' shape
    features appended."""

    def compute(indices: list[int]) -> list[np.ndarray]:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=encoder.bf16):
            return [s.float().numpy() for s in word_states(encoder, [words[i] for i in indices])]

    states = cache.get(texts, compute) if cache is not None else compute(list(range(len(words))))
    return [np.concatenate([s, w.shape], axis=1) for s, w in zip(states, words, strict=True)]


@dataclass
class SpanTagger:
    encoder: TextEncoder
    head: LinearHead
    labels: tuple[str, ...]  # entity types
    tags: tuple[str, ...]  # head outputs: O, B-x, I-x, ...
    cache: WordStateCache | None = None  # word states of ``encoder``, when the caller keeps them

    def word_inputs(self, texts: Sequence[str]) -> tuple[list[Words], list[np.ndarray]]:
        """Each text's words and the head's inputs for them (word states + shape features)."""
        words = split_words(self.encoder, texts)
        return words, _frozen_states(self.encoder, words, texts, self.cache)

    def tag(self, texts: Sequence[str]) -> list[Tagged]:
        words, inputs = self.word_inputs(texts)
        out = []
        for w, states in zip(words, inputs, strict=True):
            probs = self.head.proba(states) if len(states) else np.zeros((0, len(self.tags)), dtype=np.float32)
            best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
            chosen = [self.tags[int(j)] for j in best]
            spans = tags_to_spans(chosen, w.ranges, probs[np.arange(len(best)), best].tolist())
            out.append(Tagged(w, probs, spans))
        return out


def answer_confidence(tagged: Sequence[Tagged]) -> np.ndarray:
    """How sure the tagger is of a whole answer: the probability of its least sure word's tag (1 for
    a text without words). An answer is right only if every word's tag is."""
    return np.array([float(t.probs.max(axis=1).min()) if len(t.probs) else 1.0 for t in tagged])


def weakest_words(tagged: Sequence[Tagged], measure: str, num_tags: int) -> np.ndarray:
    """Per text, the tag distribution of its least certain word (n, tags).

    A task is as uncertain as its weakest word (max over words of the measure): one unsure entity
    boundary is what an annotator must fix, however sure the rest of the sentence is. A text with
    no words gets a certain distribution. Any uncertainty measure applied to these rows gives that
    task-level uncertainty, so strategies and scores work as for classification."""
    rows = np.zeros((len(tagged), num_tags), dtype=np.float32)
    rows[:, 0] = 1.0
    for i, t in enumerate(tagged):
        if len(t.probs):
            rows[i] = t.probs[int(np.argmax(uncertainty.uncertainty(t.probs, measure)))]
    return rows


def tag_ids(spec: TaskSpec, words: Words, spans: Sequence[Span]) -> list[int]:
    index = {tag: i for i, tag in enumerate(spec.tags)}
    return [index[t] for t in spans_to_tags(spans, words.ranges, spec)]


def fit_tagger(
    encoder: TextEncoder,
    spec: TaskSpec,
    texts: Sequence[str],
    spans: Sequence[Sequence[Span]],
    cache: WordStateCache | None = None,
) -> SpanTagger:
    """The fast path: a head on frozen word states of ``encoder`` (read through ``cache``)."""
    words = split_words(encoder, texts)
    states = _frozen_states(encoder, words, texts, cache)
    x = np.concatenate([s for s in states if len(s)] or [np.zeros((0, encoder.dim + SHAPE_FEATURES), np.float32)])
    y = np.concatenate([tag_ids(spec, w, s) for w, s in zip(words, spans, strict=True)] or [[]]).astype(np.int64)
    head = LinearHead.fit(x, y, len(spec.tags), multi_label=False, class_weight=tag_weights(spec))
    return SpanTagger(encoder, head, spec.labels, spec.tags, cache)


def finetune_tagger(
    base: TextEncoder,
    spec: TaskSpec,
    texts: Sequence[str],
    spans: Sequence[Sequence[Span]],
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SpanTagger:
    """The slow path: fine-tune a copy of the encoder with a tag head (warm-started from the fast
    head), then fit the final head on the tuned encoder's word states."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    warm = fit_tagger(base, spec, texts, spans).head
    device = training_device()
    model = copy.deepcopy(base.model).to(device)
    head = torch.nn.Linear(base.dim + SHAPE_FEATURES, len(spec.tags)).to(device)
    with torch.no_grad():
        head.weight.copy_(warm.weight)
        head.bias.copy_(warm.bias)
    words = split_words(base, texts)
    targets = [torch.tensor(tag_ids(spec, w, s), dtype=torch.long) for w, s in zip(words, spans, strict=True)]
    usable = [i for i, w in enumerate(words) if w.first_token]
    weight = torch.from_numpy(tag_weights(spec)).to(device)
    optimizer = torch.optim.AdamW([{"params": model.parameters(), "lr": lr}, {"params": head.parameters(), "lr": 1e-3}])
    steps, done = epochs * ((len(usable) + batch_size - 1) // batch_size), 0
    model.train()
    for _ in range(epochs):
        rng.shuffle(usable)
        for start in range(0, len(usable), batch_size):
            idx = usable[start : start + batch_size]
            states = word_states(base, [words[i] for i in idx], model=model, batch_size=len(idx))
            shapes = torch.from_numpy(np.concatenate([words[i].shape for i in idx])).to(device)
            logits = head(torch.cat([torch.cat(states), shapes], dim=1))
            gold = torch.cat([targets[i] for i in idx]).to(device)
            loss = torch.nn.functional.cross_entropy(logits, gold, weight=weight)
            step(optimizer, loss, model)
            done += 1
            if progress:
                progress(done, steps)
    return fit_tagger(tuned_encoder(base, model), spec, texts, spans)
