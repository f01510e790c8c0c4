"""Model version names: every name the backend writes is coined and read back here, nowhere else.

- ``v<n>-<UTC yyyymmddHHMMSS>``: a published version (the registry's folder name; ``n`` orders them)
- ``rejected-<s>`` and ``superseded-<ms>``: the audit's rows for candidates that were not published
- ``proposal-<annotation id>-<label>``: a batch-correction proposal's predictions in Label Studio
- ``cold-start``: what serves before any version was published
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

COLD_START = "cold-start"
REJECTED = "rejected-"
SUPERSEDED = "superseded-"
PROPOSAL = "proposal-"

# strict enough to be joined to a folder: no separators, no dots, bounded length
_PUBLISHED = re.compile(r"^v([0-9]{1,9})-[0-9A-Za-z]{1,32}$")


def published(number: int, at: float | None = None) -> str:
    """The name of the ``number``-th published version of a project, stamped with ``at`` (UTC)."""
    if number < 1:
        raise ValueError(f"version numbers start at 1, not {number}")
    return f"v{number}-{time.strftime('%Y%m%d%H%M%S', time.gmtime(at))}"


def next_published(existing: Iterable[str], at: float | None = None) -> str:
    """The name that follows every published name in ``existing`` (other names are ignored)."""
    return published(max((number(name) or 0 for name in existing), default=0) + 1, at)


def number(name: str) -> int | None:
    """The ordinal of a published version's name; None for any other name (rejected, proposal, path...)."""
    match = _PUBLISHED.match(name) if isinstance(name, str) else None
    return int(match.group(1)) if match else None


def is_published(name: str) -> bool:
    return number(name) is not None


def rejected(at: float) -> str:
    """The audit's name for a candidate the gate turned down at ``at`` (seconds)."""
    return f"{REJECTED}{int(at)}"


def superseded(at: float) -> str:
    """The audit's name for a candidate dropped at ``at`` because another version was published first
    (milliseconds: several may be dropped within a second)."""
    return f"{SUPERSEDED}{int(at * 1000)}"


def is_superseded(name: str) -> bool:
    return str(name).startswith(SUPERSEDED)


def proposal(proposal_id: int, label: str) -> str:
    """A proposal's model version in Label Studio; the id is followed by '-', so one id never matches
    another's prefix, and the label is reduced to characters Label Studio's filters keep."""
    return f"{PROPOSAL}{proposal_id}-{re.sub(r'[^A-Za-z0-9_.]+', '_', label)[:40]}"


def is_proposal(name: str | None) -> bool:
    """Whether a prediction's model version is a proposal's rather than a model's."""
    return str(name or "").startswith(PROPOSAL)
