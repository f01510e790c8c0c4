"""What every encoder fine-tune shares (classification and NER): one optimiser step, and the tuned
encoder that comes out (a new identity, so caches and versions never mix it up with the base)."""

from __future__ import annotations

import torch

from backend.models.encoder import TextEncoder, weights_identity


def training_device() -> torch.device:
    """Fine-tunes run on a GPU when the worker has one (the compose file's GPU worker), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, model: torch.nn.Module) -> None:
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def tuned_encoder(base: TextEncoder, model: torch.nn.Module) -> TextEncoder:
    """The tuned model as an encoder (back on the CPU, where serving and caching run)."""
    model.cpu().eval()
    return TextEncoder(
        f"{base.name_or_path}+finetuned",
        base.max_length,
        base.batch_size,
        model=model,
        tokenizer=base.tokenizer,
        identity=weights_identity(model),
        precision=base.precision,
    )
