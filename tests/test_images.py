"""Image classification: <Choices> over <Image>, images fetched only from Label Studio, served like text."""

import base64
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr

from backend.labeling import UnsupportedConfig, parse_label_config
from backend.labeling.examples import Example, targets
from backend.learning.candidates import publish_head
from backend.models.embedding_cache import EmbeddingCache
from backend.models.head import LinearHead
from backend.models.image_encoder import ImageEncoder, ImageError, ImageFetcher
from backend.server import create_app
from backend.stores.labelstudio import LabelStudioClient
from backend.tools.bench.common import free_port
from tests.support.payloads import ls_task, predict_body, setup_body
from tests.support.tiny import build_tiny_vit

CONFIG = (
    '<View><Image name="img" value="$image"/><Choices name="colour" toName="img">'
    '<Choice value="red"/><Choice value="blue"/></Choices></View>'
)
SPEC = parse_label_config(CONFIG)
TOKEN = "0123456789abcdef0123456789abcdef01234567"


def png(colour: tuple[int, int, int], size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(colour: tuple[int, int, int]) -> str:
    return "data:image/png;base64," + base64.b64encode(png(colour)).decode()


class _FakeLabelStudioFiles(BaseHTTPRequestHandler):
    """Stands in for Label Studio's /data/upload/ file serving (checked: it needs the token)."""

    files: ClassVar[dict[str, bytes]] = {
        "/data/upload/1/red.png": png((250, 10, 10)),
        "/data/upload/1/junk.png": b"not an image",
    }

    def do_GET(self):
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        if self.path == "/data/upload/1/moved.png":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
            return
        body = self.files.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def label_studio_files():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _FakeLabelStudioFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    return build_tiny_vit(tmp_path_factory.mktemp("vit"))


def test_image_configs_parse_and_ner_over_images_does_not():
    assert (SPEC.modality, SPEC.data_key, SPEC.labels) == ("image", "image", ("red", "blue"))
    text = parse_label_config(CONFIG.replace("Image", "Text"))
    assert text.modality == "text" and text.fingerprint() != SPEC.fingerprint()
    with pytest.raises(UnsupportedConfig, match='<Labels name="l"> labels <Image name="img">'):
        parse_label_config(
            '<View><Image name="img" value="$image"/><Labels name="l" toName="img"><Label value="x"/></Labels></View>'
        )


def test_fetcher_reads_label_studio_and_data_uris_only(label_studio_files):
    fetcher = ImageFetcher(LabelStudioClient(label_studio_files, TOKEN), max_bytes=50_000)
    assert fetcher.fetch("/data/upload/1/red.png").getpixel((0, 0)) == (250, 10, 10)
    assert fetcher.fetch(label_studio_files + "/data/upload/1/red.png").size == (32, 32)
    assert fetcher.fetch(data_uri((0, 0, 255))).getpixel((5, 5)) == (0, 0, 255)
    for ref, message in [
        ("http://127.0.0.2:80/data/upload/1/red.png", "SSRF"),  # another host
        (label_studio_files.replace("http:", "https:") + "/x.png", "SSRF"),  # another scheme
        ("//evil.example/x.png", "SSRF"),
        ("file:///etc/passwd", "SSRF"),
        ("/data/upload/1/missing.png", "404"),
        ("/data/upload/1/moved.png", "redirects are not followed"),
        ("/data/upload/1/junk.png", "not a readable image"),
        ("data:text/plain;base64,aGk=", "data:image/"),
        ("data:image/png;base64,@@@", "not valid base64"),
        ("data:image/png;base64," + "A" * 80_000, "larger than"),
        ("", "empty"),
    ]:
        with pytest.raises(ImageError, match=message):
            fetcher.fetch(ref)
    with pytest.raises(ImageError, match="SSRF"):
        ImageFetcher(None, 50_000).fetch("/data/upload/1/red.png")  # no Label Studio configured: data URIs only


def test_image_versions_serve_predictions_and_a_bad_image_fails_alone(settings, vit_dir, label_studio_files):
    settings = settings.model_copy(
        update={
            "image_model_name": str(vit_dir),
            "label_studio_url": label_studio_files,
            "label_studio_api_key": SecretStr(TOKEN),
        }
    )
    from backend.serving.predictor import Predictor

    predictor = Predictor(settings)
    predictor.start(background=False)
    encoder = predictor.image_encoder()
    assert isinstance(encoder, ImageEncoder) and encoder.identity.startswith("img-")
    rng = np.random.default_rng(0)
    colours = [(int(200 + rng.integers(50)), int(rng.integers(40)), int(rng.integers(40))) for _ in range(8)]
    colours += [(int(rng.integers(40)), int(rng.integers(40)), int(200 + rng.integers(50))) for _ in range(8)]
    examples = [Example(data_uri(c), ("red",) if i < 8 else ("blue",), i) for i, c in enumerate(colours)]
    cache = EmbeddingCache(settings.data_dir / "cache", encoder)
    x = cache.embed([e.text for e in examples])
    assert cache.embed([examples[0].text]).shape == (1, encoder.dim) and cache.hits == 1  # cached by reference
    head = LinearHead.fit(x, targets(examples, SPEC), 2, multi_label=False, l2=1e-5)
    version = publish_head(predictor.registry, "7", SPEC, encoder, head, examples)

    client = create_app(settings, predictor=predictor).test_client()
    assert client.post("/setup", json=setup_body(CONFIG)).json == {"model_version": version}
    refs = ["/data/upload/1/red.png", "http://127.0.0.2/x.png", data_uri((10, 10, 240)), "/data/upload/1/junk.png"]
    tasks = [ls_task(i, {"image": ref}) for i, ref in enumerate(refs, 1)]
    results = client.post("/predict", json=predict_body(tasks, CONFIG)).json["results"]
    assert results[0]["result"][0]["value"]["choices"] == ["red"]
    assert results[2]["result"][0]["value"]["choices"] == ["blue"]
    assert "SSRF" in results[1]["error"] and "result" not in results[1]
    assert "not a readable image" in results[3]["error"] and "result" not in results[3]
    assert all(r.get("model_version") == version for r in results)
