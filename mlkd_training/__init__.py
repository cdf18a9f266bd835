"""MLKD training side (desktop): data, teacher, students, losses, evaluation, export.

Imports the network definitions from :mod:`mlkd_tracker.nets`; the runtime never imports this.
"""
