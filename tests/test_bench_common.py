"""Benchmarks take a dataset as ``hitl simulate`` does (a folder) or by its name under --data."""

from backend.tools.bench.common import dataset_dir


def test_a_dataset_is_a_folder_or_a_name_under_the_data_folder(tmp_path):
    data = tmp_path / "data"
    for name in ("ag_news", "trec"):
        (data / name).mkdir(parents=True)
        (data / name / "train.jsonl").write_text("")
        (data / name / "test.jsonl").write_text("")
    mine = tmp_path / "elsewhere" / "mine"
    mine.mkdir(parents=True)
    (mine / "train.jsonl").write_text("")
    assert dataset_dir(str(data), "trec") == (data / "trec").resolve()
    assert dataset_dir(str(data), str(mine)) == mine.resolve()
    assert dataset_dir(str(data), "mine") == (data / "mine").resolve()  # a name: under --data, even if absent
