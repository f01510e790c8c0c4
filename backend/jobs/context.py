"""What a worker process keeps between jobs: the encoder, its embedding caches and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.labeling import TaskSpec
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import TextEncoder, encoder_from_settings
from backend.models.image_encoder import load_image_encoder
from backend.models.word_state_cache import WordStateCache
from backend.settings import Settings, get_settings
from backend.stores.audit import AuditStore
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry


@dataclass
class WorkerContext:
    settings: Settings
    encoder: TextEncoder
    cache: EmbeddingCache
    registry: Registry
    audit: AuditStore
    _image_cache: EmbeddingCache | None = None
    _word_states: WordStateCache | None = None
    _caches: dict[str, EmbeddingCache] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> WorkerContext:
        encoder = encoder_from_settings(settings)
        return cls(
            settings=settings,
            encoder=encoder,
            cache=EmbeddingCache(settings.data_dir / "cache", encoder, settings.database_url),
            registry=Registry.from_settings(settings),
            audit=AuditStore.from_settings(settings),
        )

    def cache_for(self, spec: TaskSpec) -> EmbeddingCache:
        """The embedding cache of the encoder that reads this spec's input (text or image)."""
        if spec.modality != "image":
            return self.cache
        if self._image_cache is None:
            self._image_cache = EmbeddingCache(
                self.settings.data_dir / "cache", load_image_encoder(self.settings), self.settings.database_url
            )
        return self._image_cache

    def cache_of(self, encoder: Any) -> EmbeddingCache:
        """The embedding cache of any encoder (a version's fine-tuned one included), on disk beside
        the base encoder's: after a fine-tune, head retrains and syncs read their embeddings here."""
        for known in (self.cache, self._image_cache):
            if known is not None and encoder.identity == known.encoder.identity:
                return known
        if encoder.identity not in self._caches:
            while len(self._caches) >= 4:  # fine-tuned encoders come and go: keep the latest in memory
                self._caches.pop(next(iter(self._caches)))
            self._caches[encoder.identity] = EmbeddingCache(self.cache.folder, encoder, self.cache.database_url)
        return self._caches[encoder.identity]

    def word_states(self) -> WordStateCache:
        """NER: frozen word states of the base encoder, on disk beside the embedding cache."""
        if self._word_states is None:
            self._word_states = WordStateCache(self.cache.folder, self.encoder.identity, self.encoder.dim)
        return self._word_states

    def label_studio(self) -> LabelStudioClient:
        return LabelStudioClient.from_settings(self.settings)


_context: WorkerContext | None = None


def context() -> WorkerContext:
    """This worker process's context, created on its first job."""
    global _context
    if _context is None:
        _context = WorkerContext.create(get_settings())
    return _context
