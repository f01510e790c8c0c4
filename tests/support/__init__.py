"""Helpers shared by the test suite: Label Studio-shaped payloads, tiny models, data loading."""
