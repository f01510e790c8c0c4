"""Named-entity spans: Label Studio regions ↔ spans ↔ word-level BIO tags.

A *word* here is a piece of the tokenizer's pre-tokenization (whitespace and punctuation split
it), with its character range in the text. The model decides one tag per word (at the word's first
sub-token), so a predicted span always starts and ends on word boundaries, and a gold span that
does too survives the round trip spans → tags → spans with its exact offsets. Offsets inside this
module are Python string indices; ``offsets.Utf16Offsets`` converts to and from Label Studio's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backend.labeling.offsets import Utf16Offsets
from backend.labeling.spec import TaskSpec


@dataclass(frozen=True)
class Span:
    start: int  # Python index of the first character
    end: int  # Python index after the last character
    label: str
    score: float | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        """What entity-level exact-match evaluation compares."""
        return (self.start, self.end, self.label)


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without the whitespace an annotator's selection may have caught at either end."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def spans_to_tags(spans: Iterable[Span], words: Sequence[tuple[int, int]], spec: TaskSpec) -> list[str]:
    """BIO tag per word: a word overlapping a span belongs to it (the first such word is B-)."""
    tags = ["O"] * len(words)
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        inside = [i for i, (ws, we) in enumerate(words) if ws < span.end and we > span.start and tags[i] == "O"]
        for n, i in enumerate(inside):
            tags[i] = f"{'B' if n == 0 else 'I'}-{span.label}"
    return tags


def tags_to_spans(
    tags: Sequence[str], words: Sequence[tuple[int, int]], scores: Sequence[float] | None = None
) -> list[Span]:
    """Spans from word tags. An I- tag that does not continue a span of its type opens one (models
    do emit such tags; dropping them would lose entities). A span's score is the mean of its words'."""
    spans: list[Span] = []
    open_label: str | None = None
    first = 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and label == open_label
        if open_label is not None and not continues:
            chunk = scores[first:i] if scores is not None else None
            score = round(float(sum(chunk) / len(chunk)), 6) if chunk else None
            spans.append(Span(words[first][0], words[i - 1][1], open_label, score))
            open_label = None
        if prefix in ("B", "I") and not continues:
            open_label, first = label, i
    return spans


def from_tokens(tokens: Sequence[str], tags: Sequence[str]) -> tuple[str, list[Span]]:
    """A CoNLL-style sentence (tokens with BIO tags, as in ``shared/data/wnut17``) as its text, the
    tokens joined by single spaces, and its entity spans."""
    text, ranges = "", []
    for token in tokens:
        if text:
            text += " "
        ranges.append((len(text), len(text) + len(token)))
        text += token
    return text, tags_to_spans(tags, ranges)


def spans_from_result(spec: TaskSpec, result: Iterable[Any], text: str) -> list[Span] | None:
    """The entity spans an annotation's result sets for this spec's control (None if no region of
    it). Offsets are converted from Label Studio's UTF-16 and trimmed of whitespace; regions with
    unknown labels or offsets outside ``text`` are ignored."""
    offsets = Utf16Offsets(text)
    found = False
    spans: list[Span] = []
    for region in result or []:
        if not isinstance(region, dict) or region.get("from_name") != spec.from_name:
            continue
        found = True
        value = region.get("value") or {}
        labels = [lb for lb in value.get("labels") or [] if lb in spec.labels]
        start, end = value.get("start"), value.get("end")
        if not labels or not isinstance(start, int) or not isinstance(end, int):
            continue
        start, end = offsets.span_from_label_studio(start, end, value.get("text"))
        if start < 0 or end > len(text):
            continue  # outside the text (or past the part of it the model reads)
        start, end = trim(text, start, end)
        if start < end:
            spans.append(Span(start, end, labels[0]))
    return spans if found else None


def spans_result(spec: TaskSpec, spans: Iterable[Span], text: str) -> list[dict[str, Any]]:
    """Label Studio regions for ``spans`` (offsets in UTF-16, a score per region)."""
    offsets = Utf16Offsets(text)
    regions = []
    for span in spans:
        value = {
            "start": offsets.to_utf16(span.start),
            "end": offsets.to_utf16(span.end),
            "text": text[span.start : span.end],
            "labels": [span.label],
        }
        region: dict[str, Any] = {
            "from_name": spec.from_name,
            "to_name": spec.to_name,
            "type": "labels",
            "value": value,
        }
        if span.score is not None:
            region["score"] = span.score
        regions.append(region)
    return regions
