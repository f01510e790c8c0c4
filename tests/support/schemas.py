"""Hypothesis strategies from the JSON schemas in our OpenAPI description (the subset it uses:
objects with properties and required keys, arrays, enums, type lists, strings, integers)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_SCALARS = {
    "string": st.text(max_size=40),
    "integer": st.integers(min_value=-(2**63), max_value=2**63),
    "number": st.floats(allow_nan=False),
    "boolean": st.booleans(),
    "null": st.none(),
}
_ANY = st.recursive(
    st.one_of(*_SCALARS.values()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of(*(from_schema({**schema, "type": k}) for k in kind))
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in props.items() if k in required},
            optional={k: from_schema(v) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=5)
    return _SCALARS.get(kind, _ANY) if kind else _ANY
