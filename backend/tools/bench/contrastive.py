"""A SetFit-style contrastive stage (Tunstall et al. 2022), tried as a fine-tune recipe for few
labels (issue 14): the encoder learns from pairs of annotated texts that embeddings of the same
label point the same way (cosine 1) and of different labels do not (cosine 0). It stays in the
tools until it wins on a validation split; the product's fine-tune is ``models/finetune.py``."""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Sequence

import torch

from backend.labeling.examples import Example
from backend.models.encoder import TextEncoder, mean_pool
from backend.models.tuning import step, training_device, tuned_encoder


def label_pairs(examples: Sequence[Example], pairs: int, seed: int = 0) -> list[tuple[int, int, float]]:
    """``pairs`` index pairs, each anchored on the examples in turn as SetFit samples them: for each
    anchor one pair of the same label (target 1; none for a label's only example) and one of two
    labels (target 0), so about half and half. Single-label examples only."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[ex.labels[0]].append(i)
    out: list[tuple[int, int, float]] = []
    anchors = list(range(len(examples)))
    while len(out) < pairs and len(by_label) > 1:
        rng.shuffle(anchors)
        for i in anchors:
            label = examples[i].labels[0]
            same = [j for j in by_label[label] if j != i]
            if same:
                out.append((i, rng.choice(same), 1.0))
            other = rng.choice([lab for lab in by_label if lab != label])
            out.append((i, rng.choice(by_label[other]), 0.0))
            if len(out) >= pairs:
                break
    return out[:pairs]


def contrastive_stage(
    base: TextEncoder,
    examples: Sequence[Example],
    pairs: int = 4000,
    lr: float = 2e-5,
    batch_size: int = 16,
    seed: int = 0,
) -> TextEncoder:
    """A new encoder after one pass over ``pairs`` pairs with SetFit's loss (squared error between
    the pair's cosine similarity and its target)."""
    torch.manual_seed(seed)
    device = training_device()
    model = copy.deepcopy(base.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    ids = base.tokenize([e.text for e in examples])
    chosen = label_pairs(examples, pairs, seed)
    model.train()
    for start in range(0, len(chosen), batch_size):
        batch = chosen[start : start + batch_size]
        left, mask_left = base.hidden_states([ids[a] for a, _, _ in batch], model)
        right, mask_right = base.hidden_states([ids[b] for _, b, _ in batch], model)
        cosine = torch.nn.functional.cosine_similarity(mean_pool(left, mask_left), mean_pool(right, mask_right))
        target = torch.tensor([t for _, _, t in batch], device=device)
        step(optimizer, torch.nn.functional.mse_loss(cosine, target), model)
    return tuned_encoder(base, model)
