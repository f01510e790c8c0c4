import numpy as np
import pytest

from backend.query.clusters import ClusterModel, assign, default_k, kmeans
from backend.query.strategies import ColdStartStrategy, RandomStrategy, make_strategy, rank
from backend.stores.documents import Documents


def _pool(seed=0, n=200, dim=8, k=4):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim)) * 5
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(size=(n, dim))).astype(np.float32), y


def test_uncertainty_strategy_serves_the_closest_call_first():
    probs = np.array([[0.9, 0.1], [0.52, 0.48], [0.7, 0.3]])
    order = rank(make_strategy("margin"), probs, np.zeros((3, 2)), np.array([10, 11, 12]))
    assert list(order) == [1, 2, 0]
    with pytest.raises(ValueError, match="needs a trained model"):
        make_strategy("entropy").scores(None, np.zeros((3, 2)), np.arange(3))


def test_random_is_reproducible_per_task_and_seed():
    ids = np.arange(1000)
    a, b = RandomStrategy(0).scores(None, None, ids), RandomStrategy(0).scores(None, None, ids[::-1])
    assert np.allclose(a, b[::-1])
    assert not np.allclose(a, RandomStrategy(1).scores(None, None, ids))
    assert a.min() >= 0 and a.max() < 1


def test_cold_start_covers_every_region_first():
    x, y = _pool()
    scores = ColdStartStrategy().scores(None, x, np.arange(len(x)))
    first = np.argsort(scores)[:4]
    assert len(set(y[first])) == 4  # the first four picks span the four blobs


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("best")


def test_kmeans_finds_blobs_and_centroids_are_stable_on_disk(tmp_path):
    x, y = _pool(k=3)
    labels = assign(x, kmeans(x, 3))
    for blob in range(3):  # each blob maps to one cluster
        assert len(set(labels[y == blob])) == 1
    model = ClusterModel(Documents(tmp_path, "clusters"), 3)
    assert model.centroids("enc") is None
    fitted = model.fit(x, 3, "enc")
    assert np.allclose(model.centroids("enc"), fitted)
    assert model.centroids("other-encoder") is None  # a new encoder needs new centroids
    assert 2 <= default_k(100_000, 4) <= 50


def test_diversify_top_alternates_clusters_below_all_other_scores():
    from backend.query.strategies import diversify_top

    scores = np.array([0.10, 0.11, 0.12, 0.50, 0.13, 0.60, 0.90])
    clusters = np.array([0, 0, 0, 1, 0, 2, 1])
    out = diversify_top(scores, clusters, n=3)
    order = list(np.argsort(out))
    assert order[:3] == [0, 3, 5]  # best of cluster 0, then of cluster 1, then of cluster 2
    assert out[[0, 3, 5]].max() < out[[1, 2, 4, 6]].min()
    assert out.min() >= 0 and out.max() <= 1  # Label Studio drops predictions with negative scores
    assert list(np.argsort(out[[1, 2, 4, 6]])) == list(np.argsort(scores[[1, 2, 4, 6]]))
    assert np.array_equal(diversify_top(scores, clusters, n=0), scores)


def test_interleave_heldout_spreads_random_heldout_tasks_through_the_queue():
    from backend.query.strategies import interleave_heldout

    n = 1000
    scores = np.linspace(0, 1, n)  # strategy order = index order
    heldout = np.zeros(n, dtype=bool)
    heldout[::7] = True  # ~14 %
    out = interleave_heldout(scores, heldout, 0.15, seed=1)
    order = np.argsort(out)
    assert out.min() == 0 and out.max() == 1
    first = order[:100]
    assert 10 <= heldout[first].sum() <= 20  # about one in seven of the first hundred served
    rest_order = [i for i in order if not heldout[i]]
    assert rest_order == sorted(rest_order)  # the strategy's order among the others is kept
    held_order = [i for i in order if heldout[i]]
    assert held_order != sorted(held_order)  # held-out tasks come in random order


def test_heldout_share_of_annotations_tracks_the_fraction_when_the_queue_is_reranked_after_each():
    """Annotators take the head of the queue and it is re-ranked after every annotation (issue 18:
    5 held-out tasks in 115 when the interleave restarted at every sync)."""
    from backend.query.strategies import interleave_heldout

    rng = np.random.default_rng(3)
    n = 400
    heldout = rng.random(n) < 0.15
    strategy = rng.random(n)  # a fixed strategy order: the most informative first
    pool = np.ones(n, dtype=bool)
    taken_heldout = []
    for step in range(150):
        ids = np.flatnonzero(pool)
        ranks = interleave_heldout(
            strategy[ids], heldout[ids], 0.15, seed=7, annotated=step, annotated_heldout=int(sum(taken_heldout))
        )
        head = ids[int(np.argmin(ranks))]
        taken_heldout.append(bool(heldout[head]))
        pool[head] = False
    for done in (20, 50, 100, 150):
        share = sum(taken_heldout[:done]) / done
        assert abs(share - 0.15) <= 0.05, (done, share)
    # and they come spread out, not in a block: never more than two held-out tasks in a row
    assert max(len(run) for run in "".join("h" if h else "." for h in taken_heldout).split(".")) <= 2


def test_badge_picks_a_batch_that_is_uncertain_and_spread_out():
    from backend.query.strategies import TOP_BAND

    x, blob = _pool(seed=3, n=400, k=4)
    rng = np.random.default_rng(3)
    margin = rng.uniform(0.05, 0.2, size=len(x))  # every task fairly uncertain...
    margin[blob == 0] = rng.uniform(0.0, 0.02, size=(blob == 0).sum())  # ...the first blob most of all
    probs = np.stack([np.full(len(x), 0.45), 0.45 - margin, 0.1 + margin], axis=1)
    ids = np.arange(len(x))
    margin_first = rank(make_strategy("margin"), probs, x, ids)[:8]
    assert set(blob[margin_first]) == {0}  # plain margin spends the batch on one region
    badge = make_strategy("badge", batch=8, seed=1)
    scores = badge.scores(probs, x, ids)
    batch = np.argsort(scores)[:8]
    assert (scores[batch] < TOP_BAND).all() and (np.delete(scores, batch) >= TOP_BAND).all()
    assert len(set(blob[batch])) >= 3  # BADGE's batch spans the regions
    rest = np.delete(ids, batch)  # after the batch, the least-margin first
    assert (np.diff(scores[rest][np.argsort(scores[rest])]) >= 0).all()
    assert badge.diverse and not make_strategy("margin").diverse
    with pytest.raises(ValueError, match="single-label"):
        make_strategy("badge", multi_label=True)


def test_badge_distances_factor_without_building_the_gradients():
    from backend.query.strategies import kmeans_pp_gradients

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=30)
    x = rng.normal(size=(30, 6))
    r = probs.copy()
    r[np.arange(30), r.argmax(axis=1)] -= 1
    g = np.einsum("ik,id->ikd", r, x).reshape(30, -1)  # the gradient embeddings, built out
    # k-means++ seeding done the long way, on the gradients themselves, with the same random draws
    draws = np.random.default_rng(2)
    expected = [int(np.argmax((g * g).sum(axis=1)))]  # the longest gradient first
    distance = ((g - g[expected[0]]) ** 2).sum(axis=1)
    for _ in range(9):
        distance[expected] = 0.0
        expected.append(int(draws.choice(len(g), p=distance / distance.sum())))
        distance = np.minimum(distance, ((g - g[expected[-1]]) ** 2).sum(axis=1))
    picks = kmeans_pp_gradients(probs, x, 10, seed=2).tolist()
    assert picks == expected and len(set(picks)) == 10  # the same batch, never the same task twice
