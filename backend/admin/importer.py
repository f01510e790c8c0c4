"""``hitl import``: tasks from a JSON, JSONL or CSV file into a project, in bulk, checked first.

The whole file is read and checked before the first task is sent, so a bad row never stops an
import half-way: each row must carry the field the project's labeling config reads (``$text``,
``$image``...), be valid JSON (no NaN), nest at most ``MAX_DEPTH`` levels and weigh at most
``MAX_TASK_BYTES``; a row that does not is reported by line, one line each, and left out. A file
that is not UTF-8 (a UTF-8 BOM, as Excel writes, is fine) is refused before anything is sent.

Reruns are idempotent: a row whose data (``hitl_*`` fields aside) is already a task of the project,
or repeats an earlier row of the file, is skipped, so one text never becomes two tasks (which
could sit on both sides of the held-out split).

Rows are sent in chunks (one HTTP call each) with a progress bar; afterwards the sync orders the
queue at once (cold start: diverse coverage), so the first task an annotator opens is already a
chosen one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from backend.labeling import TaskSpec

MAX_REPORTED = 20  # rejected rows listed one per line; the rest counted
MAX_TASK_BYTES = 1024 * 1024  # one task's JSON (the model reads HITL_MAX_TEXT_CHARS of a text anyway)
MAX_DEPTH = 32  # nesting levels of a task
MAX_CHUNK_BYTES = 32 * 1024 * 1024  # one import call's body, well under Label Studio's upload limit
OURS = "hitl_"  # task data fields the backend writes (hitl_rank, hitl_suspect...): not the task's content


class ImportFileError(ValueError):
    """The file cannot be read as tasks at all; the message says why (and where)."""


@dataclass
class ImportSummary:
    project_id: int
    read: int = 0
    imported: int = 0
    already: int = 0  # rows whose task the project (or an earlier row of the file) already has
    rejected: list[str] = field(default_factory=list)  # "line N: why"

    def lines(self) -> list[str]:
        text = f"project {self.project_id}: {self.imported} of {self.read} tasks imported"
        if self.already:
            text += f", {self.already} already there (skipped)"
        if self.rejected:
            text += f", {len(self.rejected)} left out:"
        out = [text, *(f"  {why}" for why in self.rejected[:MAX_REPORTED])]
        if len(self.rejected) > MAX_REPORTED:
            out.append(f"  (and {len(self.rejected) - MAX_REPORTED} more)")
        return out

    def line(self) -> str:
        return "\n".join(self.lines())


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or item number, row) from a .json list, .jsonl/.ndjson lines or a .csv with a header.
    A row that cannot be read is an exception in place of the row; a file that cannot be read at all
    raises ImportFileError."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".ndjson", ".csv"):
        raise ImportFileError(f"{path}: use a .json, .jsonl or .csv file (got {suffix or 'no extension'})")
    try:
        text = _utf8(path)
        if suffix == ".json":
            try:
                data = json.loads(text)
            except RecursionError:
                raise ImportFileError(f"{path}: cannot read it as tasks (nested too deeply)") from None
            if isinstance(data, dict):
                data = [data]
            if not isinstance(data, list):
                raise ImportFileError(f"{path}: a .json file must hold a list of tasks")
            yield from enumerate(data, 1)
        elif suffix in (".jsonl", ".ndjson"):
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    yield number, _json_line(line)
        else:
            yield from _csv_rows(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ImportFileError(f"{path}: cannot read it as tasks ({exc})") from None


def _utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # Excel's CSV starts with a BOM
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(
            f"{path}: line {line} is not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8; "
            "nothing was imported"
        ) from None


def _json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return ValueError(f"not JSON ({exc.msg})")
    except RecursionError:
        return ValueError("nested too deeply")


def _csv_rows(text: str) -> Iterator[tuple[int, Any]]:
    """Rows numbered by the line they start on (a quoted cell may span lines); cells may be large:
    a task's size is checked later, per row."""
    previous = csv.field_size_limit(MAX_TASK_BYTES * 16)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
        start = 2  # line 1 is the header
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, ValueError(f"not CSV ({exc})")
            else:
                yield start, ValueError("more cells than the header has columns") if "\0extra" in row else row
            start = reader.line_num + 1
    finally:
        csv.field_size_limit(previous)


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
    _check_values(task, 0)
    size = len(json.dumps(task, ensure_ascii=False, allow_nan=False).encode())
    if size > MAX_TASK_BYTES:
        raise ValueError(f"the task is {size / 1024:.0f} KiB, over the {MAX_TASK_BYTES // 1024} KiB limit")
    return task


def _check_values(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number (NaN and Infinity cannot be sent)")
    if isinstance(value, dict):
        for item in value.values():
            _check_values(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_values(item, depth + 1)


def content_key(data: dict[str, Any]) -> str:
    """What makes two tasks the same: their data, the fields the backend writes aside."""
    content = {k: v for k, v in data.items() if not str(k).startswith(OURS)}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def check_file(
    path: Path, spec: TaskSpec, existing: Iterable[dict[str, Any]], project_id: int
) -> tuple[ImportSummary, list[dict[str, Any]]]:
    """Every row read and checked, nothing sent: (the summary so far, the tasks to send)."""
    summary = ImportSummary(project_id)
    seen = {content_key(data) for data in existing}
    tasks: list[dict[str, Any]] = []
    unit = "item" if path.suffix.lower() == ".json" else "line"
    for number, row in read_rows(path):
        summary.read += 1
        try:
            task = task_of(row, spec)
        except ValueError as exc:
            summary.rejected.append(f"{unit} {number}: {exc}")
            continue
        key = content_key(task["data"])
        if key in seen:
            summary.already += 1
            continue
        seen.add(key)
        tasks.append(task)
    return summary, tasks


def import_file(
    ls: Any, project_id: int, spec: TaskSpec, path: Path, chunk: int = 1000, progress: bool = True
) -> ImportSummary:
    summary, tasks = check_file(path, spec, ls.task_data(project_id), project_id)
    bar = tqdm(desc="importing", unit="task", total=len(tasks), disable=not progress)
    batch: list[dict[str, Any]] = []
    size = 0
    for task in tasks:
        weight = len(json.dumps(task, ensure_ascii=False).encode())
        if batch and (len(batch) >= chunk or size + weight > MAX_CHUNK_BYTES):
            summary.imported += _send(ls, project_id, batch, bar)
            size = 0
        batch.append(task)
        size += weight
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
