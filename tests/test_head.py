import numpy as np

from backend.models.head import LinearHead


def _blobs(seed=0, n=300, k=3, dim=16):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim)) * 3
    y = rng.integers(0, k, size=n)
    x = centers[y] + rng.normal(size=(n, dim))
    return x.astype(np.float32), y


def test_head_learns_separable_classes_and_round_trips(tmp_path):
    x, y = _blobs()
    head = LinearHead.fit(x[:200], y[:200], num_labels=3, multi_label=False)
    probs = head.proba(x[200:])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == y[200:]).mean() > 0.9
    head.save(tmp_path / "head.safetensors")
    again = LinearHead.load(tmp_path / "head.safetensors")
    assert np.allclose(again.proba(x[200:]), probs)
    assert again.multi_label is False


def test_multilabel_head_sets_independent_labels(tmp_path):
    x, y = _blobs(seed=1, k=4)
    targets = np.zeros((len(y), 4), dtype=np.float32)
    targets[np.arange(len(y)), y] = 1
    targets[:, 3] = y == 0  # label 3 always accompanies label 0
    head = LinearHead.fit(x, targets, num_labels=4, multi_label=True)
    probs = head.proba(x)
    assert ((probs >= 0.5) == (targets == 1)).mean() > 0.9
    head.save(tmp_path / "h.safetensors")
    assert LinearHead.load(tmp_path / "h.safetensors").multi_label is True
