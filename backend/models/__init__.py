"""Model adapters: a shared text encoder, light heads on its embeddings, and the classifier joining them."""

from backend.models.classifier import TextClassifier
from backend.models.encoder import TextEncoder, default_encoder_path, load_encoder
from backend.models.head import LinearHead

__all__ = ["LinearHead", "TextClassifier", "TextEncoder", "default_encoder_path", "load_encoder"]
