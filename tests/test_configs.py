"""Every labeling config we ship validates, says what it is for, and `hitl configs validate` explains failures."""

from pathlib import Path

import pytest

from backend.cli.main import main
from backend.labeling import parse_label_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "labeling_configs").glob("*.xml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {
        "text_classification.xml",
        "multi_label_classification.xml",
        "named_entity_recognition.xml",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_is_served_and_documented(path):
    text = path.read_text()
    assert text.lstrip().startswith("<!--"), "each config starts with a comment saying what it is for"
    spec = parse_label_config(text)
    assert spec.rationale_name, "each config offers a TextArea for the annotator's rationale"


def test_validate_command_exit_codes_and_messages(tmp_path, capsys):
    assert main(["configs", "validate", *map(str, CONFIGS)]) == 0
    assert capsys.readouterr().out.count("ok ") == len(CONFIGS)
    bad = tmp_path / "rating.xml"
    bad.write_text('<View><Text name="t" value="$t"/><Rating name="stars" toName="t"/></View>')
    assert main(["configs", "validate", str(bad), str(tmp_path / "missing.xml")]) == 1
    out = capsys.readouterr().out
    assert '<Rating name="stars"> is not supported' in out and "cannot read it" in out
