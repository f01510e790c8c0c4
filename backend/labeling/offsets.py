"""Label Studio's character offsets ↔ Python string indices.

Label Studio's editor runs in a browser, so a span's ``start``/``end`` count UTF-16 code units
(a JavaScript string's indices): an emoji outside the Basic Multilingual Plane counts 2 there and
1 in Python. Texts without such characters have identical offsets on both sides.
"""

from __future__ import annotations

from bisect import bisect_left


class Utf16Offsets:
    """Converts offsets of one text in both directions (precomputed, O(log n) per lookup)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._astral = [i for i, ch in enumerate(text) if ord(ch) > 0xFFFF]  # Python indices of 2-unit chars
        self.utf16_length = len(text) + len(self._astral)

    @property
    def identical(self) -> bool:
        return not self._astral

    def to_utf16(self, index: int) -> int:
        """Python index → UTF-16 offset."""
        return index + bisect_left(self._astral, index)

    def from_utf16(self, offset: int) -> int:
        """UTF-16 offset → Python index; an offset inside a surrogate pair maps to that character."""
        if self.identical:
            return offset
        lo, hi = 0, len(self.text)
        while lo < hi:  # the smallest Python index whose UTF-16 offset is >= offset
            mid = (lo + hi) // 2
            if self.to_utf16(mid) < offset:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def span_from_label_studio(self, start: int, end: int, text: str | None = None) -> tuple[int, int]:
        """A Label Studio span → Python indices. Spans are UTF-16 (what the editor writes); a span
        whose ``text`` matches only when read as Python indices (written by a Python tool through
        the API) is taken as Python indices."""
        converted = self.from_utf16(start), self.from_utf16(end)
        if text is None or self.identical:
            return converted
        if self.text[converted[0] : converted[1]] != text and self.text[start:end] == text:
            return start, end
        return converted
