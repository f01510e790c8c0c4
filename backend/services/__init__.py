"""Processes the backend runs beside itself: an embedded Redis when none is configured."""
