"""A tiny BERT built from a config (random weights) for fast unit tests, with MiniLM's tokenizer."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, BertConfig, BertModel

from backend.models.encoder import default_encoder_path


def build_tiny_encoder(directory: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_vit(directory: Path, seed: int = 0) -> Path:
    """A tiny ViT (random weights) with its image processor, for image-classification unit tests."""
    import torch
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    ViTModel(config).save_pretrained(directory, safe_serialization=True)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory
