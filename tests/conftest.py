from __future__ import annotations

from pathlib import Path

import pytest

from backend.predictor import Predictor
from backend.settings import Settings
from tests.support.tiny import build_tiny_encoder


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture
def settings(tiny_encoder_dir: Path, tmp_path: Path) -> Settings:
    return Settings(model_name=str(tiny_encoder_dir), registry_dir=tmp_path / "registry", data_dir=tmp_path)


@pytest.fixture
def predictor(settings: Settings) -> Predictor:
    predictor = Predictor(settings)
    predictor.start(background=False)
    return predictor
