"""Human-in-the-loop active-learning backend for Label Studio."""

__version__ = "0.1.0"
