"""What /predict is asked is kept in Redis for the drift check: capped, cut, taken once (issue 16, item 3)."""

import redis

from backend.jobs.inputs import MAX_CHARS, MAX_KEPT, PredictInputs


def test_inputs_wait_for_a_window_and_are_taken_once(redis_server):
    inputs = PredictInputs(redis.Redis.from_url(redis_server.url))
    inputs.connection.delete("hitl:predict-inputs:3")
    inputs.record(3, [f"old {i}" for i in range(150)])
    assert inputs.take(3, 200) == []  # not a window yet: they stay
    inputs.record(3, [f"new {i}" for i in range(100)] + ["x" * (MAX_CHARS + 50)])
    taken = inputs.take(3, 200)
    assert len(taken) == 200 and taken[0] == "x" * MAX_CHARS  # the latest first, cut
    assert "new 99" in taken and "old 149" in taken and "old 0" not in taken  # the latest window only
    assert inputs.take(3, 1) == []  # everything waiting left with them
    inputs.record(3, ["t"] * (MAX_KEPT + 10))
    assert inputs.connection.llen("hitl:predict-inputs:3") == MAX_KEPT  # capped
