"""`hitl import` reads JSON, JSONL and CSV and checks each row against the labeling config."""

import json

import pytest

from backend.admin.importer import ImportFileError, import_file, read_rows, task_of
from backend.labeling import parse_label_config
from tests.support.payloads import AG_CONFIG

SPEC = parse_label_config(AG_CONFIG)


def test_rows_from_each_format_become_tasks(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n\n{"data": {"text": "b"}, "meta": {"src": 1}}\n{oops\n')
    (tmp_path / "t.json").write_text(json.dumps([{"text": "a"}, {"data": {"text": "b"}}]))
    (tmp_path / "t.csv").write_text("text,source\nhello,web\n,empty\n")
    rows = list(read_rows(tmp_path / "t.jsonl"))
    assert [n for n, _ in rows] == [1, 3, 4]  # line numbers, blank lines skipped
    assert task_of(rows[0][1], SPEC) == {"data": {"text": "a"}}
    assert task_of(rows[1][1], SPEC) == {"data": {"text": "b"}, "meta": {"src": 1}}
    with pytest.raises(ValueError, match="not JSON"):
        task_of(rows[2][1], SPEC)
    assert [task_of(r, SPEC)["data"]["text"] for _, r in read_rows(tmp_path / "t.json")] == ["a", "b"]
    csv_rows = list(read_rows(tmp_path / "t.csv"))
    assert task_of(csv_rows[0][1], SPEC) == {"data": {"text": "hello", "source": "web"}}
    assert csv_rows[1][0] == 3
    with pytest.raises(ValueError, match=r"no non-empty 'text' \(the labeling config reads \$text\)"):
        task_of(csv_rows[1][1], SPEC)


def test_unreadable_files_say_why(tmp_path):
    (tmp_path / "t.txt").write_text("x")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "scalar.json").write_text("3")
    for name, message in [
        ("t.txt", "use a .json, .jsonl or .csv"),
        ("bad.json", "cannot read it as tasks"),
        ("scalar.json", "must hold a list"),
        ("missing.csv", "cannot read it"),
    ]:
        with pytest.raises(ImportFileError, match=message):
            list(read_rows(tmp_path / name))


class FakeLabelStudio:
    """Keeps imported tasks; refuses what Label Studio (or the JSON encoder on the way) would."""

    def __init__(self) -> None:
        self.tasks: list[dict] = []

    def task_data(self, project_id):  # type: ignore[no-untyped-def]
        return [task["data"] for task in self.tasks]

    def import_tasks(self, project_id, data):  # type: ignore[no-untyped-def]
        json.dumps(data, allow_nan=False)  # NaN is not JSON: the real import fails on it
        self.tasks.extend(data)


def _file(tmp_path, suffix: str, bad: bytes, rows: int = 1500, bad_line: int = 1001):  # type: ignore[no-untyped-def]
    """``rows`` good rows, the one at line ``bad_line`` replaced by ``bad``."""
    header = [b"text,source"] if suffix == ".csv" else []
    lines = [
        f"text {i},web".encode() if suffix == ".csv" else json.dumps({"text": f"text {i}"}).encode()
        for i in range(rows)
    ]
    lines = header + lines
    lines[bad_line - 1] = bad
    path = tmp_path / f"tasks{suffix}"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


BAD_ROWS = {
    "cell over 128 KiB": (".csv", b"x" * (129 * 1024) + b",web", None),
    "deeply nested line": (".jsonl", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "NaN": (".jsonl", b'{"text": "not a number", "score": NaN}', "NaN"),
    "task over 1 MiB": (".jsonl", json.dumps({"text": "y" * (1100 * 1024)}).encode(), "over the 1024 KiB limit"),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_a_bad_row_at_line_1001_is_reported_and_reruns_import_nothing_twice(tmp_path, case):
    suffix, bad, message = BAD_ROWS[case]
    path = _file(tmp_path, suffix, bad)
    ls = FakeLabelStudio()
    good = 1500 - (1 if message else 0)
    first = import_file(ls, 3, SPEC, path, progress=False)
    assert len(ls.tasks) == first.imported == good  # the whole file, not the 1,000 before the bad row
    if message:
        assert first.rejected == [first.rejected[0]] and first.rejected[0].startswith("line 1001: ")
        assert message in first.rejected[0]
    else:  # a big cell is a big text: kept (the model reads HITL_MAX_TEXT_CHARS of it)
        assert not first.rejected
    for _ in range(2):  # reruns: nothing new, nothing twice
        again = import_file(ls, 3, SPEC, path, progress=False)
        assert again.imported == 0 and again.already == good and again.rejected == first.rejected
    assert len(ls.tasks) == good
    assert len({task["data"]["text"] for task in ls.tasks}) == good
    report = first.line().splitlines()
    assert len(report) == 1 + len(first.rejected) and all(len(line) < 300 for line in report)


def test_a_file_that_is_not_utf8_is_refused_by_line_before_anything_is_sent(tmp_path):
    path = _file(tmp_path, ".jsonl", '{"text": "caf\xe9"}'.encode("latin-1"))
    ls = FakeLabelStudio()
    with pytest.raises(ImportFileError, match=r"line 1001 is not UTF-8 \(byte 0xe9\).*nothing was imported"):
        import_file(ls, 3, SPEC, path, progress=False)
    assert ls.tasks == []


def test_excels_bom_and_repeated_rows(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes('\ufefftext,source\r\nhello,web\r\n"two\r\nlines",web\r\nhello,web\r\nbad,web,extra\r\n'.encode())
    ls = FakeLabelStudio()
    summary = import_file(ls, 3, SPEC, path, progress=False)
    assert [t["data"]["text"] for t in ls.tasks] == ["hello", "two\r\nlines"]  # not "\ufefftext": every row
    assert summary.already == 1  # the same task twice in one file is one task
    assert summary.rejected == ["line 6: more cells than the header has columns"]  # a quoted cell spans lines 3-4
    # a task the backend marked since (hitl_* fields) is still the same task
    ls.tasks[0]["data"]["hitl_rank"] = 4
    assert import_file(ls, 3, SPEC, path, progress=False).imported == 0
