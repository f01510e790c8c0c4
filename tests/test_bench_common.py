"""Benchmarks take a dataset as ``hitl simulate`` does (a folder) or by its name under --data, and
say what is missing, and where they looked, when it is not there (the full data is not in the repository)."""

import pytest

from backend.cli.main import main
from backend.tools.bench.common import dataset_dir

pytestmark = pytest.mark.tools


def _datasets(root, *names, splits=("train", "test")):
    for name in names:
        (root / name).mkdir(parents=True)
        for split in splits:
            (root / name / f"{split}.jsonl").write_text("")
    return root


def test_a_dataset_is_a_folder_or_a_name_under_the_data_folder(tmp_path):
    data = _datasets(tmp_path / "data", "ag_news", "trec")
    mine = _datasets(tmp_path / "elsewhere", "mine") / "mine"
    assert dataset_dir(str(data), "trec") == (data / "trec").resolve()
    assert dataset_dir(str(data), str(mine)) == mine.resolve()
    with pytest.raises(SystemExit, match=r"dataset 'mine' not found: .* no mine/ in .*data\. .*--dataset FOLDER"):
        dataset_dir(str(data), "mine")  # a name: only under --data


def test_without_data_the_name_is_looked_for_under_hitl_shared_data_then_shared_data(tmp_path, monkeypatch):
    shared = _datasets(tmp_path / "shared" / "data", "trec")
    monkeypatch.setenv("HITL_SHARED_DATA", str(shared))
    assert dataset_dir(None, "trec") == (shared / "trec").resolve()
    monkeypatch.delenv("HITL_SHARED_DATA")
    monkeypatch.chdir(tmp_path / "shared")  # ../shared/data from here
    assert dataset_dir(None, "trec") == (shared / "trec").resolve()
    monkeypatch.chdir(tmp_path)  # ./shared/data
    assert dataset_dir(None, "trec") == (shared / "trec").resolve()


def test_a_folder_without_the_splits_a_benchmark_reads_is_refused_by_name(tmp_path):
    folder = _datasets(tmp_path, "wnut17") / "wnut17"
    assert dataset_dir(None, str(folder)) == folder.resolve()
    with pytest.raises(SystemExit, match=r"wnut17 has no dev\.jsonl \(this needs train\.jsonl, test\.jsonl, dev"):
        dataset_dir(None, str(folder), splits=("train", "test", "dev"))


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "predict"],
        ["bench", "finetune", "--dataset", "trec"],
        ["bench", "ner"],
        ["simulate", "--dataset", "trec", "--out", "out"],
    ],
)
def test_with_no_data_anywhere_each_command_says_what_is_missing(argv, tmp_path, monkeypatch, capsys):
    """Nothing given, no HITL_SHARED_DATA, no shared/ folder: one clear message, before any model loads."""
    monkeypatch.delenv("HITL_SHARED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    message = str(exited.value)
    assert "not found" in message and "--dataset FOLDER" in message and "HITL_SHARED_DATA" in message
    assert "not part of this repository" in message and str(tmp_path / "shared" / "data") in message


def test_the_ner_benchmark_finds_the_repositorys_labeling_config():
    from backend.tools.bench.ner import CONFIG

    assert CONFIG.is_file(), CONFIG  # labeling_configs/ at the repository's root (it was looked for in backend/)
