"""Database access: engine set-up per backend, sessions, migrations, planner statistics."""

from tracker.db.engine import Database, make_engine, open_database
from tracker.db.statistics import analyze

__all__ = ["Database", "analyze", "make_engine", "open_database"]
