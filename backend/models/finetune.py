"""The slow path of learning: fine-tune the encoder together with a head (minutes on a CPU)."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Sequence

import torch

from backend.labeling import TaskSpec
from backend.labeling.examples import Example, targets
from backend.models.encoder import TextEncoder, mean_pool
from backend.models.head import LinearHead
from backend.models.tuning import step, training_device, tuned_encoder


def finetune(
    base: TextEncoder,
    spec: TaskSpec,
    examples: Sequence[Example],
    epochs: int = 2,
    lr: float = 3e-5,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    min_steps: int = 0,
) -> TextEncoder:
    """A new encoder tuned on ``examples``; the caller fits the final head on its embeddings.
    ``min_steps``: at least this many optimiser steps, in whole epochs: a small label set gets
    more epochs (two epochs of 100 labels are a dozen steps, too few to move the encoder)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = training_device()
    model = copy.deepcopy(base.model).to(device)
    warm = LinearHead.fit(
        base.embed([e.text for e in examples]), targets(examples, spec), len(spec.labels), spec.multi_label
    )
    head = torch.nn.Linear(base.dim, len(spec.labels)).to(device)
    with torch.no_grad():
        head.weight.copy_(warm.weight)
        head.bias.copy_(warm.bias)
    optimizer = torch.optim.AdamW([{"params": model.parameters(), "lr": lr}, {"params": head.parameters(), "lr": 1e-3}])
    y_all = torch.from_numpy(targets(examples, spec))
    ids = base.tokenize([e.text for e in examples])
    order = list(range(len(examples)))
    batches = (len(order) + batch_size - 1) // batch_size
    epochs = max(epochs, math.ceil(min_steps / max(batches, 1)))
    steps = epochs * batches
    done = 0
    model.train()
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = base.tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
            hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            logits = head(mean_pool(hidden, batch["attention_mask"]))
            y = y_all[idx].to(device)
            if spec.multi_label:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = torch.nn.functional.cross_entropy(logits, y)
            step(optimizer, loss, model)
            done += 1
            if progress:
                progress(done, steps)
    return tuned_encoder(base, model)
