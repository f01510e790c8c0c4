"""Admin actions: set a project up from a labeling config, import tasks."""
