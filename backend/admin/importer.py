"""``hitl import``: tasks from a JSON, JSONL or CSV file into a project, in bulk, checked first.

Each row must carry the field the project's labeling config reads (``$text``, ``$image``...): a row
without it is reported by line and left out, never sent. Rows are sent in chunks (one HTTP call
each) with a progress bar; afterwards the sync orders the queue at once (cold start: diverse
coverage), so the first task an annotator opens is already a chosen one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from backend.labeling import TaskSpec

MAX_REPORTED = 5


class ImportFileError(ValueError):
    """The file cannot be read as tasks at all; the message says why."""


@dataclass
class ImportSummary:
    project_id: int
    read: int = 0
    imported: int = 0
    rejected: list[str] = field(default_factory=list)  # "line N: why"

    def line(self) -> str:
        text = f"project {self.project_id}: {self.imported} of {self.read} tasks imported"
        if self.rejected:
            shown = "; ".join(self.rejected[:MAX_REPORTED])
            more = f" (and {len(self.rejected) - MAX_REPORTED} more)" if len(self.rejected) > MAX_REPORTED else ""
            text += f", {len(self.rejected)} left out: {shown}{more}"
        return text


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or item number, row) from a .json list, .jsonl/.ndjson lines or a .csv with a header."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = [data]
            if not isinstance(data, list):
                raise ImportFileError(f"{path}: a .json file must hold a list of tasks")
            yield from enumerate(data, 1)
        elif suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            yield number, json.loads(line)
                        except json.JSONDecodeError as exc:
                            yield number, ImportFileError(f"not JSON ({exc.msg})")
        elif suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                yield from enumerate(csv.DictReader(handle), 2)  # line 1 is the header
        else:
            raise ImportFileError(f"{path}: use a .json, .jsonl or .csv file (got {suffix or 'no extension'})")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFileError(f"{path}: cannot read it as tasks ({exc})") from None


def task_of(row: Any, spec: TaskSpec) -> dict[str, Any]:
    """The task to send (``{"data": ...}`` rows keep their other keys); ValueError says what is wrong."""
    if isinstance(row, Exception):
        raise ValueError(str(row))
    if not isinstance(row, dict):
        raise ValueError(f"a task must be an object, got {type(row).__name__}")
    task = row if isinstance(row.get("data"), dict) else {"data": row}
    value = task["data"].get(spec.data_key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"no non-empty {spec.data_key!r} (the labeling config reads ${spec.data_key})")
    return task


def import_file(ls: Any, project_id: int, spec: TaskSpec, path: Path, chunk: int = 1000,
                progress: bool = True) -> ImportSummary:  # fmt: skip
    summary = ImportSummary(project_id)
    batch: list[dict[str, Any]] = []
    bar = tqdm(desc="importing", unit="task", disable=not progress)
    for number, row in read_rows(path):
        summary.read += 1
        try:
            batch.append(task_of(row, spec))
        except ValueError as exc:
            summary.rejected.append(f"{'line' if path.suffix.lower() != '.json' else 'item'} {number}: {exc}")
            continue
        if len(batch) >= chunk:
            summary.imported += _send(ls, project_id, batch, bar)
    if batch:
        summary.imported += _send(ls, project_id, batch, bar)
    bar.close()
    return summary


def _send(ls: Any, project_id: int, batch: list[dict[str, Any]], bar: Any) -> int:
    ls.import_tasks(project_id, list(batch))
    bar.update(len(batch))
    sent = len(batch)
    batch.clear()
    return sent
