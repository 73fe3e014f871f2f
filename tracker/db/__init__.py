"""Database access: engine set-up per backend, sessions, and migrations."""

from tracker.db.engine import Database, make_engine

__all__ = ["Database", "make_engine"]
