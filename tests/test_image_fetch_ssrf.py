"""The Label Studio token never leaves for another host, whatever a task's image reference says.

Two HTTP servers on 127.0.0.1: a stand-in for Label Studio's file serving, and an "attacker" that
records every request it gets. For each parser-confusion reference below, the fetch must fail as
this task's error and the attacker must receive nothing (before the fix, the first one sent the
backend's ``Authorization: Token ...`` header to the attacker).
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from backend.models.image_encoder import ImageError, ImageFetcher
from backend.stores.labelstudio import LabelStudioClient, UnsafeReference, file_path
from backend.tools.bench.common import free_port

TOKEN = "0123456789abcdef0123456789abcdef01234567"


def _png(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid PNG of a few hundred bytes whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 64)  # far too little data, but the header is what a bomb abuses
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


class _Recorder(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        body = self.server.files.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


def _server(files: dict[str, bytes]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    server.seen, server.files = [], files
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers():
    files = {
        "/data/upload/1/red.png": _png(),
        "/data/upload/1/red.png?x=1": _png(),
        "/data/upload/1/bomb.png": bomb_png(),
        "/x.png": _png(),
    }
    label_studio, attacker = _server(files), _server(files)
    yield label_studio, attacker
    label_studio.shutdown()
    attacker.shutdown()


def confusing_references(ls: int, evil: int) -> list[str]:
    """Every reference here must be refused, and none may reach the attacker on port ``evil``."""
    here, there = f"127.0.0.1:{ls}", f"127.0.0.1:{evil}"
    return [
        f"http://{there}\\@{here}/data/upload/1/red.png",  # requests: host=there; urlsplit: host=here
        f"http://{there}\\\\@{here}/data/upload/1/red.png",
        f"http://{there}@{here}/data/upload/1/red.png",  # user info
        f"http://{here}@{there}/data/upload/1/red.png",
        f"http://{there}%2F@{here}/data/upload/1/red.png",  # an encoded slash in the authority
        f"http://{there}%2f%2e@{here}/data/upload/1/red.png",
        f"http://{there}#@{here}/data/upload/1/red.png",  # fragment
        f"http://{here}/data/upload/1/red.png#@{there}",
        f"http://{there}?@{here}/data/upload/1/red.png",
        f"http://{there}\uff0f@{here}/data/upload/1/red.png",  # unicode slash
        f"http://127\u30020\u30020\u30021:{evil}/x.png",  # unicode dots
        f"http://127\uff0e0\uff0e0\uff0e1:{ls}/data/upload/1/red.png",
        f"http://[::1]:{ls}/data/upload/1/red.png",  # the same machine by another name
        f"http://[::ffff:127.0.0.1]:{ls}/data/upload/1/red.png",
        f"http://localhost:{ls}/data/upload/1/red.png",
        "http://127.0.0.1:0/data/upload/1/red.png",  # odd ports
        "http://127.0.0.1:99999/data/upload/1/red.png",
        "http://127.0.0.1:abc/data/upload/1/red.png",
        f"http://127.0.0.1:{ls}:{evil}/data/upload/1/red.png",
        f"http://127.0.0.1:-{ls}/data/upload/1/red.png",
        f"http://{there}\t@{here}/data/upload/1/red.png",  # control characters
        f"http://{there}\n@{here}/data/upload/1/red.png",
        f"http://{there} @{here}/data/upload/1/red.png",
        f"https://{here}/data/upload/1/red.png",  # another scheme
        f"ftp://{here}/data/upload/1/red.png",
        f"//{there}/data/upload/1/red.png",  # scheme-relative
        f"/\\{there}/data/upload/1/red.png",
        f"\\\\{there}/data/upload/1/red.png",
        f"http:/{there}/data/upload/1/red.png",
        f"http:\\\\{there}/data/upload/1/red.png",
        "/data/upload/../../api/projects",  # paths outside Label Studio's file serving
        "/data/upload/%2e%2e/%2e%2e/api/projects",
        "/data/upload/..%2F..%2Fapi/projects",
        "/data/%00/x.png",
        "/api/projects/1/export",
        f"http://{here}/api/current-user/token",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "x" * 3000,
    ]


def test_parser_confusion_never_reaches_another_host(servers):
    label_studio, attacker = servers
    ls_port, evil_port = label_studio.server_port, attacker.server_port
    fetcher = ImageFetcher(LabelStudioClient(f"http://127.0.0.1:{ls_port}", TOKEN), max_bytes=100_000)
    for ref in confusing_references(ls_port, evil_port):
        with pytest.raises(ImageError):
            fetcher.fetch(ref)
        assert attacker.seen == [], f"{ref!r} reached the attacker: {attacker.seen}"
    assert label_studio.seen == [], "a refused reference must not be requested at all"
    # what Label Studio really stores still works, and only ever goes to the configured URL
    assert fetcher.fetch("/data/upload/1/red.png").size == (16, 16)
    assert fetcher.fetch(f"http://127.0.0.1:{ls_port}/data/upload/1/red.png").size == (16, 16)
    assert fetcher.fetch(f"HTTP://127.0.0.1:{ls_port}/data/upload/1/red.png?x=1").size == (16, 16)
    assert attacker.seen == []
    assert label_studio.seen == [("/data/upload/1/red.png", f"Token {TOKEN}")] * 2 + [
        ("/data/upload/1/red.png?x=1", f"Token {TOKEN}")
    ]


def test_file_path_keeps_the_configured_prefix_and_default_ports():
    assert file_path("http://ls.example", "http://LS.example:80/data/upload/2/a%20b.png") == "/data/upload/2/a%20b.png"
    assert file_path("https://ls.example/label", "https://ls.example/label/data/upload/x.png") == "/data/upload/x.png"
    assert file_path("http://h:8080", "/data/local-files/?d=dir%2Fimg.jpg") == "/data/local-files/?d=dir%2Fimg.jpg"
    for ref in ["https://ls.example/other/data/upload/x.png", "http://ls.example:8080/label/data/x.png"]:
        with pytest.raises(UnsafeReference):
            file_path("https://ls.example/label", ref)


def test_a_decompression_bomb_fails_its_task_before_decoding(servers):
    label_studio, _ = servers
    fetcher = ImageFetcher(
        LabelStudioClient(f"http://127.0.0.1:{label_studio.server_port}", TOKEN), 100_000, max_pixels=40_000_000
    )
    data = bomb_png()
    assert len(data) < 1000
    with pytest.raises(ImageError, match="more than 40000000 pixels"):
        fetcher.fetch("/data/upload/1/bomb.png")
    with pytest.raises(ImageError, match="HITL_MAX_IMAGE_PIXELS"):
        fetcher.decode(bomb_png(8000, 6000))  # 48 M pixels: below PIL's own bomb limit, above ours
    big = io.BytesIO()
    Image.new("RGB", (3000, 2000), (1, 2, 3)).save(big, format="PNG")
    assert max(fetcher.decode(big.getvalue()).size) == 1024  # decoded images are shrunk on arrival
