"""Version names are coined and read back by one module (``stores/versions.py``)."""

import calendar

import pytest

from backend.stores import versions


def test_published_names_round_trip_and_order_by_number():
    at = calendar.timegm((2026, 12, 6, 13, 45, 0))
    name = versions.published(12, at)
    assert name == "v12-20261206134500"
    assert versions.number(name) == 12 and versions.is_published(name)
    assert versions.next_published([name, versions.published(3, at), "rejected-5"], at) == "v13-20261206134500"
    assert versions.next_published([], at) == "v1-20261206134500"
    with pytest.raises(ValueError):
        versions.published(0, at)


def test_only_published_names_have_a_number():
    for other in [
        versions.rejected(1765000000.7),
        versions.superseded(1765000000.7),
        versions.proposal(41, "Sports & Games"),
        versions.COLD_START,
        "v1-",
        "v1-x/../../2",
        "/etc",
        "",
        None,
    ]:
        assert versions.number(other) is None and not versions.is_published(other), other


def test_unpublished_and_proposal_names_round_trip():
    assert versions.rejected(1765000000.7) == "rejected-1765000000"
    assert versions.superseded(1765000000.7) == "superseded-1765000000700"
    assert versions.is_superseded(versions.superseded(1.0)) and not versions.is_superseded(versions.rejected(1.0))
    name = versions.proposal(41, "Sports & Games")
    assert name == "proposal-41-Sports_Games"
    assert versions.is_proposal(name) and not versions.is_proposal(versions.published(1, 0))
    assert not versions.is_proposal(None)
