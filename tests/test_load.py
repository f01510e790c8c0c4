"""Under concurrent load, with a version published mid-run, gunicorn answers every /predict.

A short version of `hitl bench load` (which runs 50 clients for 60 s with MiniLM): the same client
loop and the same mid-run publish, against a real `hitl serve` process with the tiny encoder.
"""

import pytest

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.models.encoder import TextEncoder
from backend.stores.registry import Registry
from backend.tools.bench.common import backend_server, free_port
from backend.tools.bench.load import predict_bodies, run_clients
from backend.tools.bench.predict import AG_CONFIG
from tests.support.data import load_jsonl


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_no_request_fails_while_a_new_version_is_published(tiny_encoder_dir, tmp_path):
    rows = load_jsonl("ag_news", "train", 300)
    spec = parse_label_config(AG_CONFIG)
    encoder = TextEncoder(str(tiny_encoder_dir))
    examples = [Example(r["text"], (r["label"],), i) for i, r in enumerate(rows)]
    registry = Registry(tmp_path / "registry")
    first = publish_head(registry, "1", spec, encoder, fit_head(encoder, spec, examples[:100]), examples[:100])
    second_head = fit_head(encoder, spec, examples)
    published = []
    env = {
        "HITL_REGISTRY_DIR": str(registry.root),
        "HITL_MODEL_NAME": str(tiny_encoder_dir),
        "HITL_DATA_DIR": str(tmp_path),
        "HITL_LOG_LEVEL": "WARNING",
    }
    with backend_server(env, free_port(), workers=2) as url:
        result = run_clients(
            url,
            predict_bodies([r["text"] for r in rows], 8),
            clients=16,
            seconds=8,
            at_half=lambda: published.append(publish_head(registry, "1", spec, encoder, second_head, examples)),
        )
    assert not result.errors, result.line("load")
    assert result.requests > 50
    assert result.versions[first] > 0 and result.versions[published[0]] > 0  # served before, and after the switch
