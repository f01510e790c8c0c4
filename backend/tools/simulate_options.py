"""The replay's strategy names, apart from the replay: ``hitl --help`` lists them without importing torch."""

from __future__ import annotations

DEFAULT_STRATEGY = "margin-diverse"
SIM_STRATEGIES = ("margin-diverse", "margin", "entropy", "least_confidence", "badge", "random")
