"""The flood guard's look-up budget never drops a project Label Studio has confirmed: when its cached
confirmation expires during a flood of made-up ids, its webhooks are still served (a real Redis)."""

from __future__ import annotations

import redis

from backend.server.projects import KNOWN, ServedProjects

REAL = 42


class _LabelStudio:
    calls = 0

    def serves(self, project_id: int) -> bool:
        type(self).calls += 1
        return project_id == REAL


def test_a_flood_that_spends_the_budget_does_not_drop_a_confirmed_project(redis_server, settings):
    connection = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/3")  # its own look-up counters
    connection.flushdb()
    projects = ServedProjects(settings.model_copy(update={"project_lookups_per_minute": 5}), connection, _LabelStudio)
    assert projects.check(REAL).served
    connection.delete(KNOWN.format(project=REAL))  # its cached confirmation expires...
    verdicts = [projects.check(10**9 + i) for i in range(20)]  # ...while made-up ids spend the budget
    assert not any(v.served for v in verdicts) and "too many" in verdicts[-1].reason
    calls = _LabelStudio.calls
    verdict = projects.check(REAL)
    assert verdict.served and "confirmed by Label Studio before" in verdict.reason
    assert _LabelStudio.calls == calls  # no look-up beyond the budget
    assert not projects.check(10**9 + 99).served  # a made-up id still is not
    connection.flushdb()


def test_a_project_label_studio_no_longer_confirms_is_forgotten(redis_server, settings):
    connection = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/3")
    connection.flushdb()
    answers = iter([True, False])

    class _Changing:
        def serves(self, project_id: int) -> bool:
            return next(answers)

    projects = ServedProjects(settings.model_copy(update={"project_lookups_per_minute": 2}), connection, _Changing)
    assert projects.check(REAL).served
    connection.delete(KNOWN.format(project=REAL))
    assert not projects.check(REAL).served  # its ML backend was disconnected
    connection.delete(KNOWN.format(project=REAL))
    assert not projects.check(REAL).served  # budget spent: no longer a confirmed project
    connection.flushdb()
