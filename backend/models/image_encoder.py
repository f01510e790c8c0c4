"""Image classification's encoder: task image references → embeddings, like ``TextEncoder`` for text.

A task's image is a reference string (what ``$image`` holds): a ``data:image/...;base64,`` URI,
a path Label Studio serves (``/data/upload/...``), or a URL on the Label Studio host. Nothing else
is fetched: no other host, no file path, no redirect elsewhere (SSRF protection), and no image
above ``HITL_MAX_IMAGE_BYTES``. Because references are strings, the embedding cache, the head,
the registry, the gate and the sync work for images exactly as for texts.

Models load from safetensors only, never with remote code.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from transformers import AutoImageProcessor, AutoModel

from backend.labeling.tasks import TaskError
from backend.models.encoder import file_identity, resolve_bf16
from backend.stores.labelstudio import UnsafeReference

log = logging.getLogger(__name__)


class ImageError(TaskError):
    """This task's image cannot be fetched or read; the task fails alone."""


class ImageFetcher:
    """Reads images from data URIs and from the configured Label Studio only.

    A reference to Label Studio is validated by ``labelstudio.file_path`` and the request is built
    from the configured URL, never from the reference's own host part."""

    def __init__(
        self, label_studio: Any | None, max_bytes: int, max_pixels: int = 40_000_000, max_side: int = 1024
    ) -> None:
        self.label_studio = label_studio  # a LabelStudioClient, or None: then only data URIs work
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels  # decompression bombs: a small file that declares a huge image
        self.max_side = max_side  # decoded images are shrunk to this: the model sees 224 px anyway

    def fetch(self, ref: str) -> Image.Image:
        """The image, RGB and at most ``max_side`` pixels wide and high; ImageError for anything that
        is not a readable image we may fetch (every failure is this task's alone)."""
        if not isinstance(ref, str) or not ref.strip():
            raise ImageError("the image reference is empty")
        try:
            raw = self._data_uri(ref) if ref.startswith("data:") else self._download(ref)
        except ImageError:
            raise
        except UnsafeReference as exc:
            raise ImageError(f"image {ref[:80]!r} is not fetched: {exc} (SSRF protection)") from None
        except Exception as exc:  # HTTP errors, size limit, connection: this task fails alone
            raise ImageError(f"image {ref[:80]!r} could not be fetched: {exc}") from None
        return self.decode(raw, ref)

    def decode(self, raw: bytes, ref: str = "") -> Image.Image:
        try:
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
                if width * height > self.max_pixels:
                    raise ImageError(
                        f"image {ref[:80]!r} declares {width}x{height} pixels, more than "
                        f"{self.max_pixels} (HITL_MAX_IMAGE_PIXELS)"
                    )
                image.draft("RGB", (self.max_side, self.max_side))  # JPEG: decode at a reduced scale
                rgb = image.convert("RGB")
            rgb.thumbnail((self.max_side, self.max_side))
            return rgb
        except ImageError:
            raise
        except Image.DecompressionBombError:  # PIL's own limit, far above ours: refused on the header
            raise ImageError(
                f"image {ref[:80]!r} declares more than {self.max_pixels} pixels (HITL_MAX_IMAGE_PIXELS)"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ImageError(f"image {ref[:80]!r} is not a readable image: {exc}") from None

    def _download(self, ref: str) -> bytes:
        if self.label_studio is None:
            raise ImageError(
                f"image {ref[:80]!r} is not fetched: only data URIs are read while "
                "HITL_LABEL_STUDIO_URL is unset (SSRF protection)"
            )
        return self.label_studio.download(ref, self.max_bytes)

    def _data_uri(self, ref: str) -> bytes:
        header, _, payload = ref.partition(",")
        if not header.startswith("data:image/") or not header.endswith(";base64"):
            raise ImageError("a data URI must be data:image/<type>;base64,<data>")
        if len(payload) * 3 // 4 > self.max_bytes:
            raise ImageError(f"image larger than {self.max_bytes} bytes (HITL_MAX_IMAGE_BYTES)")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("the data URI is not valid base64") from None


class ImageEncoder:
    """Pooled, L2-normalised embeddings from a transformers image model (ViT, ResNet, CLIP vision...)."""

    max_length = 0  # the shared encoder interface; images have no token limit

    def __init__(
        self,
        name_or_path: str,
        fetcher: ImageFetcher,
        batch_size: int = 16,
        precision: str = "auto",
        model: torch.nn.Module | None = None,
        processor: Any = None,
    ) -> None:
        self.name_or_path = name_or_path
        self.fetcher = fetcher
        self.batch_size = batch_size
        self.precision = precision
        self.processor = processor or AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=False)
        self.model = model or AutoModel.from_pretrained(name_or_path, trust_remote_code=False, use_safetensors=True)
        self.model.eval()
        config = self.model.config
        self.dim = int(getattr(config, "hidden_size", None) or config.hidden_sizes[-1])
        self.identity = "img-" + file_identity(name_or_path)
        self.bf16 = resolve_bf16(precision)

    def embed(self, refs: Sequence[str]) -> np.ndarray:
        """Embeddings of the referenced images, in order; an unreadable one raises ImageError.
        Images are fetched and decoded one batch at a time, so memory does not grow with ``refs``."""
        out = np.empty((len(refs), self.dim), dtype=np.float32)
        for start in range(0, len(refs), self.batch_size):
            batch = refs[start : start + self.batch_size]
            out[start : start + len(batch)] = self.embed_images([self.fetcher.fetch(ref) for ref in batch])
        return out

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = np.empty((len(images), self.dim), dtype=np.float32)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for start in range(0, len(images), self.batch_size):
                batch = self.processor(images=list(images[start : start + self.batch_size]), return_tensors="pt")
                output = self.model(pixel_values=batch["pixel_values"])
                pooled = getattr(output, "pooler_output", None)
                if pooled is None:
                    pooled = output.last_hidden_state.mean(dim=1)
                pooled = pooled.reshape(pooled.shape[0], -1).float()
                out[start : start + len(pooled)] = torch.nn.functional.normalize(pooled, dim=1).numpy()
        return out

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(directory, safe_serialization=True)
        self.processor.save_pretrained(directory)


def load_image_encoder(settings: Any) -> ImageEncoder:
    """The configured image encoder, fetching through the configured Label Studio."""
    if not settings.image_model_name:
        raise ImageError(
            "this project labels images: set HITL_IMAGE_MODEL_NAME to an image model (a local folder or "
            "a hub id, e.g. a ViT) for the server and the workers"
        )
    from backend.stores.labelstudio import LabelStudioClient

    client = None
    if settings.label_studio_url and settings.label_studio_api_key:
        client = LabelStudioClient.from_settings(settings)
    fetcher = ImageFetcher(client, settings.max_image_bytes, settings.max_image_pixels)
    log.info("loading image encoder %s", settings.image_model_name)
    return ImageEncoder(settings.image_model_name, fetcher, settings.batch_size, settings.precision)
