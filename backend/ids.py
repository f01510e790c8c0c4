"""Project ids and job kinds: parsed once where they enter (HTTP, CLI, RQ), typed everywhere after."""

from __future__ import annotations

import re
from enum import StrEnum

ProjectId = int

_PROJECT_RE = re.compile(r"^([0-9]{1,18})(\.[0-9A-Za-z_-]{0,40})?$")


def parse_project_id(value: object) -> ProjectId:
    """A Label Studio project id from an int, ``"<id>"`` or the ``"<id>.<created-at>"`` that Label
    Studio sends to ML backends; anything else (paths, names, booleans) is refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < 10**18:  # as many digits as the pattern below allows
            return value
        raise ValueError("project id out of range (0 to 18 digits)")
    match = _PROJECT_RE.match(value.strip()) if isinstance(value, str) and len(value) <= 100 else None
    if match is None:
        shown = repr(value[:41] if isinstance(value, str) else value)  # never echo a huge value back
        raise ValueError(f"project must look like '<id>' or '<id>.<timestamp>', got {shown[:40]}")
    return int(match.group(1))


class JobKind(StrEnum):
    """What a queued job does: a head retrain, a fine-tune, a queue sync, a label check, proposals, or the
    embedding of a project's pool by a new encoder before its sync."""

    HEAD = "head"
    FULL = "full"
    SYNC = "sync"
    LABEL_ERRORS = "label-errors"
    PROPOSALS = "proposals"
    EMBED = "embed"
