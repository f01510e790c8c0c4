"""NER spans: Label Studio regions → spans → word tags → spans → regions keep their exact offsets."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.labeling import parse_label_config
from backend.labeling.offsets import Utf16Offsets
from backend.labeling.spans import Span, spans_from_result, spans_result, spans_to_tags, tags_to_spans, trim
from backend.models.encoder import TextEncoder
from backend.models.tagger import split_words

NER_CONFIG = (
    '<View><Labels name="label" toName="text"><Label value="PER"/><Label value="LOC"/><Label value="ORG"/></Labels>'
    '<Text name="text" value="$text"/><TextArea name="why" toName="text"/></View>'
)
SPEC = parse_label_config(NER_CONFIG)


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir):
    return TextEncoder(str(tiny_encoder_dir), max_length=128)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def region(text: str, start: int, end: int, label: str) -> dict:
    """A region as Label Studio's editor writes it: offsets in UTF-16 code units."""
    return {
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {"start": utf16(text[:start]), "end": utf16(text[:end]), "text": text[start:end], "labels": [label]},
    }


CASES = [
    ("Barack Obama visited Paris .", [("Barack Obama", "PER"), ("Paris", "LOC")]),
    ("Café Müller in São Paulo, naïve façade", [("Café Müller", "ORG"), ("São Paulo", "LOC")]),
    ("🚀 launch by SpaceX 👨🏻‍🚒 in Texas 🇺🇸 today", [("SpaceX", "ORG"), ("Texas", "LOC")]),
    ("emoji inside 🎉Party🎉 and 北京 大学 here", [("北京 大学", "ORG")]),
    ("tabs\tand\nnew lines   Angela  Merkel\t\tspoke", [("Angela  Merkel", "PER")]),
    ("U.S. officials met @elonmusk at #Tesla HQ", [("U.S.", "LOC"), ("@elonmusk", "PER"), ("#Tesla", "ORG")]),
    ("ends with an entity: New York", [("New York", "LOC")]),
]


def _gold(text: str, entities: list[tuple[str, str]]) -> list[Span]:
    spans, cursor = [], 0
    for surface, label in entities:
        start = text.index(surface, cursor)
        spans.append(Span(start, start + len(surface), label))
        cursor = start + len(surface)
    return spans


@pytest.mark.parametrize(("text", "entities"), CASES, ids=[c[0][:20] for c in CASES])
def test_round_trip_reproduces_label_studio_offsets(encoder, text, entities):
    gold = _gold(text, entities)
    result = [region(text, s.start, s.end, s.label) for s in gold]
    spans = spans_from_result(SPEC, result, text)
    assert spans == gold  # UTF-16 offsets read back as Python indices

    words = split_words(encoder, [text])[0]
    tags = spans_to_tags(spans, words.ranges, SPEC)
    assert tags_to_spans(tags, words.ranges) == gold  # through word tags and back, exactly

    back = spans_result(SPEC, gold, text)
    assert [r["value"] for r in back] == [r["value"] for r in result]  # and out again in UTF-16


def test_utf16_offsets_both_ways():
    text = "a😀b👨🏻‍🚒c"
    offsets = Utf16Offsets(text)
    assert offsets.utf16_length == utf16(text)
    for i in range(len(text) + 1):
        assert offsets.to_utf16(i) == utf16(text[:i])
        assert offsets.from_utf16(offsets.to_utf16(i)) == i
    assert Utf16Offsets("plain").identical


def test_span_written_in_python_indices_is_recognised_by_its_text():
    text = "😀😀 Paris"
    python_region = {"from_name": "label", "value": {"start": 3, "end": 8, "text": "Paris", "labels": ["LOC"]}}
    assert spans_from_result(SPEC, [python_region], text) == [Span(3, 8, "LOC")]


def test_whitespace_around_a_selection_is_trimmed():
    text = "hello  Berlin  bye"
    assert trim(text, 5, 15) == (7, 13)
    sloppy = {"from_name": "label", "value": {"start": 5, "end": 15, "labels": ["LOC"]}}
    assert spans_from_result(SPEC, [sloppy], text) == [Span(7, 13, "LOC")]


def test_regions_of_other_controls_unknown_labels_and_bad_offsets_are_ignored():
    text = "Anna lives in Rome"
    result = [
        {"from_name": "why", "value": {"text": ["because"]}},
        {"from_name": "label", "value": {"start": 0, "end": 4, "labels": ["ALIEN"]}},
        {"from_name": "label", "value": {"start": 14, "end": 99, "labels": ["LOC"]}},
        {"from_name": "label", "value": {"start": "0", "end": 4, "labels": ["PER"]}},
        {"from_name": "label", "value": {"start": 14, "end": 18, "labels": ["LOC"]}},
    ]
    assert spans_from_result(SPEC, result, text) == [Span(14, 18, "LOC")]
    assert spans_from_result(SPEC, [{"from_name": "why", "value": {}}], text) is None
    assert spans_from_result(SPEC, [{"from_name": "label", "value": {}}], text) == []


def test_stray_inside_tags_open_a_span_and_scores_average():
    words = [(0, 3), (4, 7), (8, 11), (12, 15)]
    tags = ["I-PER", "I-PER", "B-LOC", "I-ORG"]
    spans = tags_to_spans(tags, words, [0.5, 0.7, 0.9, 0.4])
    assert spans == [Span(0, 7, "PER", 0.6), Span(8, 11, "LOC", 0.9), Span(12, 15, "ORG", 0.4)]


def test_span_inside_a_word_tags_the_whole_word():
    words = [(0, 10), (11, 14)]
    assert spans_to_tags([Span(2, 5, "ORG")], words, SPEC) == ["B-ORG", "O"]


_TOKEN = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp")), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(_TOKEN, st.sampled_from(["O", "PER", "LOC"]), st.sampled_from([" ", "  ", "\t", "\n"])),
        min_size=1,
        max_size=12,
    )
)
def test_round_trip_on_generated_texts(encoder, rows):
    """Any text whose entities cover whole words survives regions → tags → regions unchanged."""
    text, gold = "", []
    for token, label, gap in rows:
        start = len(text)
        text += token
        if label != "O":
            gold.append(Span(start, len(text), label))
        text += gap
    words = split_words(encoder, [text])[0]
    aligned = [
        s for s in gold if any(ws == s.start for ws, _ in words.ranges) and any(we == s.end for _, we in words.ranges)
    ]
    result = spans_result(SPEC, aligned, text)
    spans = spans_from_result(SPEC, result, text) or []
    assert spans == aligned
    tags = spans_to_tags(spans, words.ranges, SPEC)
    rebuilt = tags_to_spans(tags, words.ranges)
    assert rebuilt == aligned  # adjacent entities of one type stay apart: each starts with B-
    assert [r["value"] for r in spans_result(SPEC, rebuilt, text)] == [r["value"] for r in result]
