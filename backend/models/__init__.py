"""Models: the shared encoders, light heads on their embeddings, the span tagger, their caches and
how a version is stored (safetensors). Knows nothing of learning policy or serving."""
