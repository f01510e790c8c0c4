import numpy as np

from backend.learning.head_selection import L2_GRID, MIN_HELDOUT, fit_selected_head, served_log_loss
from backend.models.head import DEFAULT_L2, LinearHead


def _embeddings(seed: int, n: int, signal: float, flip: float = 0.0, k: int = 4, dim: int = 64):
    """Unit-norm vectors like sentence embeddings: the classes differ along a few low-variance
    directions (scaled by ``signal``) under larger nuisance variance elsewhere, so telling them
    apart needs large weights, which only a weak penalty allows once there are enough examples.
    ``flip``: share of labels replaced by random ones."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, 8))
    y = rng.integers(0, k, size=n)
    x = np.concatenate(
        [signal * (centers[y] + 0.7 * rng.normal(size=(n, 8))), rng.normal(size=(n, dim - 8)) / np.sqrt(dim)], axis=1
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.where(rng.random(n) < flip, rng.integers(0, k, size=n), y)
    return x.astype(np.float32), y


def test_too_few_heldout_annotations_keep_the_default_penalty():
    x, y = _embeddings(0, 300, signal=0.1)
    choice = fit_selected_head(
        x[:250], y[:250], x[250 : 250 + MIN_HELDOUT - 1], y[250 : 250 + MIN_HELDOUT - 1], 4, multi_label=False
    )
    assert choice.l2 == DEFAULT_L2 and choice.heldout_log_loss == {}
    assert choice.as_dict() == {"l2": DEFAULT_L2, "heldout_log_loss": {}}


def test_many_labels_get_a_weaker_penalty_that_predicts_better_than_the_default():
    x, y = _embeddings(1, 9000, signal=0.03)
    train, held, test = slice(0, 5000), slice(5000, 6000), slice(6000, 9000)
    choice = fit_selected_head(x[train], y[train], x[held], y[held], 4, multi_label=False)
    assert set(choice.heldout_log_loss) == set(L2_GRID)
    assert choice.l2 < DEFAULT_L2
    assert choice.heldout_log_loss[choice.l2] == min(choice.heldout_log_loss.values())
    default = LinearHead.fit(x[train], y[train], 4, multi_label=False)
    accuracy = lambda head: (head.proba(x[test]).argmax(axis=1) == y[test]).mean()  # noqa: E731
    assert served_log_loss(choice.head, x[test], y[test]) < served_log_loss(default, x[test], y[test])
    assert accuracy(choice.head) > accuracy(default)


def test_few_noisy_labels_get_a_stronger_penalty_than_many_clean_ones():
    x, y = _embeddings(2, 4000, signal=0.1, flip=0.3)
    few = fit_selected_head(x[:60], y[:60], x[3000:], y[3000:], 4, multi_label=False)
    clean_x, clean_y = _embeddings(2, 6000, signal=0.1)
    many = fit_selected_head(clean_x[:5000], clean_y[:5000], clean_x[5000:], clean_y[5000:], 4, multi_label=False)
    assert few.l2 > many.l2


def test_multilabel_heads_are_chosen_on_binary_log_loss():
    x, y = _embeddings(3, 3000, signal=0.1)
    targets = np.zeros((len(y), 4), dtype=np.float32)
    targets[np.arange(len(y)), y] = 1
    targets[:, 3] = np.maximum(targets[:, 3], y == 0)
    choice = fit_selected_head(x[:2000], targets[:2000], x[2000:], targets[2000:], 4, multi_label=True)
    assert choice.head.multi_label and set(choice.heldout_log_loss) == set(L2_GRID)
    assert ((choice.head.proba(x[2000:]) >= 0.5) == (targets[2000:] == 1)).mean() > 0.9
