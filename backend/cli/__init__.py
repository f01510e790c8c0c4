"""``hitl``: the command line (``main.py``; ``models.py`` for the registry commands)."""
