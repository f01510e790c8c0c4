"""The stabilising-predictions criterion: kappa between consecutive versions' answers on a fixed
reference set, stable after WINDOW kappas at or above THRESHOLD, said in words."""

from __future__ import annotations

from backend.query.stopping import STOP_SET, THRESHOLD, WINDOW, StoppingState, answer_key


def answers(tasks, flip_every=0):
    return {t: answer_key([{"value": {"choices": ["B" if flip_every and t % flip_every == 0 else "A"]}}])
            for t in tasks}  # fmt: skip


def test_the_reference_set_is_drawn_once_and_stays(tmp_path):
    state = StoppingState(tmp_path / "s.sqlite3")
    first = state.stop_set(1, list(range(10_000)))
    assert len(first) == STOP_SET
    assert state.stop_set(1, list(range(20_000, 30_000))) == first  # fixed, whatever the pool is now
    assert StoppingState(tmp_path / "s.sqlite3").stop_set(1, []) == first  # and persisted
    assert state.stop_set(2, list(range(50))) == set(range(50))  # a small pool: all of it


def test_kappa_per_version_and_the_verdict(tmp_path):
    state = StoppingState(tmp_path / "s.sqlite3")
    tasks = list(range(1000))
    assert state.status(1).kappas == [] and "not enough versions" in state.status(1).message
    state.record(1, "v1", answers(tasks, flip_every=2))  # half B
    state.record(1, "v1", answers(tasks, flip_every=3))  # the same version again: recorded once
    state.record(1, "v2", answers(tasks, flip_every=3))  # a third B: changed a lot
    status = state.status(1)
    assert [v for v, _, _ in status.kappas] == ["v2"] and status.kappas[0][1] < 0.9 and not status.stable
    assert "still changing" in status.message
    for version in ("v3", "v4", "v5"):
        state.record(1, version, answers(tasks[:900], flip_every=3))  # annotated tasks leave: compare the rest
    status = state.status(1)
    assert [k for _, k, _ in status.kappas[-WINDOW:]] == [1.0] * WINDOW and status.kappas[-1][2] == 900
    assert status.stable and "stabilised" in status.message and str(THRESHOLD) in status.message


def test_the_report_says_when_to_stop(tmp_path):
    from backend.oversight.report import ProjectData, render

    state = StoppingState(tmp_path / "s.sqlite3")
    for version in ("v1", "v2", "v3", "v4"):
        state.record(3, version, answers(range(100)))
    page = render(ProjectData(3, [], [], [], {}, "v4", state.status(3)))
    assert "<h2>When to stop</h2>" in page and "predictions have stabilised" in page
