"""A linear head on frozen embeddings: the fast path of learning (seconds to train, tiny to store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

DEFAULT_L2 = 1e-3  # per-retrain choice on held-out annotations: models/head_selection.py


class LinearHead:
    """Multinomial (or, for multi-label, one-vs-rest) logistic regression."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, multi_label: bool, temperature: float = 1.0):
        self.weight = weight.float()
        self.bias = bias.float()
        self.multi_label = multi_label
        self.temperature = float(temperature)

    @property
    def num_labels(self) -> int:
        return int(self.weight.shape[0])

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        return (x @ self.weight.T + self.bias).numpy()

    def proba(self, embeddings: np.ndarray) -> np.ndarray:
        z = self.logits(embeddings) / self.temperature
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-z))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        targets: np.ndarray,
        num_labels: int,
        multi_label: bool,
        l2: float = DEFAULT_L2,
        max_iter: int = 200,
        seed: int = 0,
        class_weight: np.ndarray | None = None,
    ) -> LinearHead:
        """Fit by full-batch L-BFGS with an L2 penalty.

        ``targets``: class indices (n,) for single-label, a 0/1 matrix (n, num_labels) for multi-label.
        ``class_weight`` (single-label): per-class loss weights, e.g. to keep a dominant class from
        drowning the rare ones.
        """
        if len(embeddings) == 0:
            raise ValueError("cannot fit a head on zero examples")
        torch.manual_seed(seed)
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        dim = x.shape[1]
        weight = torch.zeros(num_labels, dim, requires_grad=True)
        bias = torch.zeros(num_labels, requires_grad=True)
        if multi_label:
            y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
            loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
        else:
            y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
            w = None if class_weight is None else torch.from_numpy(np.asarray(class_weight, dtype=np.float32))

            def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return torch.nn.functional.cross_entropy(logits, y, weight=w)

        optimizer = torch.optim.LBFGS(
            [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_fn(x @ weight.T + bias, y) + l2 * (weight**2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(weight.detach().clone(), bias.detach().clone(), multi_label=multi_label)

    def save(self, path: Path) -> None:
        save_file(
            {"weight": self.weight.contiguous(), "bias": self.bias.contiguous()},
            str(path),
            metadata={"multi_label": str(self.multi_label), "temperature": repr(self.temperature)},
        )

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        return cls(
            tensors["weight"],
            tensors["bias"],
            multi_label=meta.get("multi_label") == "True",
            temperature=float(meta.get("temperature", "1.0")),
        )
