"""The embedding cache gives every text the encoder's own vector, embeds each text once, and reads
back from disk what an earlier process embedded."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import TextEncoder


class Counting:
    """The real tiny encoder, counting the texts it is asked to embed."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder, self.identity, self.dim, self.embedded = encoder, encoder.identity, encoder.dim, []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return self.encoder.embed(texts)


def test_vectors_are_the_encoders_each_text_is_embedded_once_and_disk_serves_a_new_process(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    encoder = Counting(TextEncoder(str(tiny_encoder_dir)))
    texts = [f"text number {i}" for i in range(3000)]
    direct = encoder.encoder.embed(texts[:50])
    cache = EmbeddingCache(tmp_path, encoder)  # type: ignore[arg-type]
    first = np.concatenate([cache.embed(texts[i : i + 700]) for i in range(0, 3000, 700)])  # grows several times
    assert len(encoder.embedded) == 3000
    np.testing.assert_allclose(first[:50], direct, atol=1e-5)
    shuffled = np.random.default_rng(0).permutation(3000)
    again = cache.embed([texts[i] for i in shuffled] + texts[:5])  # from memory, in any order, repeats allowed
    assert len(encoder.embedded) == 3000 and cache.hits == 3005
    np.testing.assert_array_equal(again[:3000], first[shuffled])
    np.testing.assert_array_equal(again[3000:], first[:5])

    fresh = EmbeddingCache(tmp_path, encoder)  # a new process: nothing in memory
    before = len(encoder.embedded)
    out = fresh.embed([*texts, "a new text"])
    assert encoder.embedded[before:] == ["a new text"]
    np.testing.assert_array_equal(out[:3000], first)
    np.testing.assert_allclose(out[3000], encoder.encoder.embed(["a new text"])[0], atol=1e-5)


def test_a_forgotten_cache_reads_disk_and_threads_share_one_copy(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    encoder = Counting(TextEncoder(str(tiny_encoder_dir)))
    cache = EmbeddingCache(tmp_path, encoder)  # type: ignore[arg-type]
    texts = [f"shared text {i}" for i in range(400)]
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(cache.embed(texts))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(r, results[0]) for r in results)
    assert len(cache._row) == 400  # each text holds one row, however many threads embedded it
    cache.forget()
    embedded = len(encoder.embedded)
    np.testing.assert_array_equal(cache.embed(texts), results[0])
    assert len(encoder.embedded) == embedded  # read back from disk, not embedded again


def test_a_pool_held_in_memory_is_read_whole_and_a_new_text_goes_the_chunked_way(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    encoder = Counting(TextEncoder(str(tiny_encoder_dir)))
    cache = EmbeddingCache(tmp_path, encoder)  # type: ignore[arg-type]
    texts = [f"pool text {i}" for i in range(1200)]
    readable, first = cache.embed_readable(texts, step=500)
    assert readable.all() and len(encoder.embedded) == 1200
    readable, again = cache.embed_readable(texts[::-1], step=500)  # from memory, in another order
    assert readable.all() and len(encoder.embedded) == 1200
    np.testing.assert_array_equal(again, first[::-1])
    readable, grown = cache.embed_readable([*texts, "one more"], step=500)
    assert readable.all() and encoder.embedded[1200:] == ["one more"]
    np.testing.assert_array_equal(grown[:1200], first)


def test_hosts_sharing_postgresql_embed_a_text_once_and_a_lost_database_only_costs_embedding(
    tiny_encoder_dir: Path, tmp_path: Path, caplog
) -> None:
    """Two hosts (separate folders, separate caches, one database): what one embedded the other reads;
    another encoder's vectors stay apart; a database that cannot be reached makes the host embed for
    itself, without a timeout per call."""
    import time

    from backend.tools.bench.common import free_port
    from tests.support.services import postgres_database

    texts = [f"shared pool text {i}" for i in range(1500)]
    with postgres_database("hitl_vectors") as (_, url):
        first_host = Counting(TextEncoder(str(tiny_encoder_dir)))
        second_host = Counting(TextEncoder(str(tiny_encoder_dir)))
        one = EmbeddingCache(tmp_path / "host-a", first_host, url)  # type: ignore[arg-type]
        other = EmbeddingCache(tmp_path / "host-b", second_host, url)  # type: ignore[arg-type]
        readable, embedded = one.embed_readable(texts, step=500)
        assert readable.all() and len(first_host.embedded) == 1500 and one.path is None
        _, read = other.embed_readable(texts, step=500)
        assert second_host.embedded == []  # nothing embedded twice across hosts
        np.testing.assert_array_equal(read, embedded)
        assert not list((tmp_path / "host-b").glob("*.sqlite3"))  # nothing kept on the host's disk
        stranger = Counting(TextEncoder(str(tiny_encoder_dir)))
        stranger.identity = "another-encoder"
        EmbeddingCache(tmp_path / "host-b", stranger, url).embed(texts[:10])  # type: ignore[arg-type]
        assert len(stranger.embedded) == 10  # an encoder reads only its own vectors

    away = Counting(TextEncoder(str(tiny_encoder_dir)))
    lost = EmbeddingCache(tmp_path / "host-c", away, f"postgresql://postgres@127.0.0.1:{free_port()}/none")  # type: ignore[arg-type]
    started = time.monotonic()
    readable, vectors = lost.embed_readable(texts, step=100)
    assert readable.all() and len(away.embedded) == 1500
    np.testing.assert_allclose(vectors, embedded, atol=1e-5)
    assert time.monotonic() - started < 30
    assert caplog.text.count("shared embedding cache: read failed") == 1  # then left alone a while
