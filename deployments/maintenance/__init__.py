"""Maintenance windows: when the platform may disrupt a deployment (issue 18, item 2). ``schedule`` is the pure
calendar arithmetic; ``validation``, ``selectors`` and ``services`` are the reads and writes around the rows."""
