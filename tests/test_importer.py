"""`hitl import` reads JSON, JSONL and CSV and checks each row against the labeling config."""

import json

import pytest

from backend.admin.importer import ImportFileError, read_rows, task_of
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
    for name, message in [("t.txt", "use a .json, .jsonl or .csv"), ("bad.json", "cannot read it as tasks"),
                          ("scalar.json", "must hold a list"), ("missing.csv", "cannot read it")]:  # fmt: skip
        with pytest.raises(ImportFileError, match=message):
            list(read_rows(tmp_path / name))
