"""Planner statistics after a bulk write: `analyze`, called once at the end of each bulk
operation (`tracker import events`, `tracker demo`, a rollup rebuild of many days).

PostgreSQL plans each query from the value distributions ANALYZE last sampled. Autovacuum
samples a table again once about a tenth of it changed, but only when its launcher next
visits the database (every minute, one table at a time per worker, after any vacuum it has
queued), and a sample taken in the middle of a load sees part of it. So for minutes after
a load, queries (the first export, the rollup build, the stats page) are planned on the old
numbers: a site whose ten million events were just imported is, to the planner, a site of
a few rows (it was not among the values sampled), and its queries can run with the nested
loops and index probes meant for a few rows, for hours where seconds would do. ANALYZE reads a
fixed sample (30,000 rows with the default statistics target), so it takes about a second
whatever the table's size.

SQLite is left as it is: its planner reads statistics only once ANALYZE has run, and then
keeps them as they were (it has no autovacuum to renew them), so one ANALYZE after an import
would make every later plan depend on the numbers of that day while live traffic grows the
tables; without statistics it plans from the schema alone, alike at any size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from sqlalchemy import Table, text
from sqlalchemy.exc import SQLAlchemyError

from tracker.db.engine import Database

log = logging.getLogger(__name__)


def analyze(db: Database, tables: Iterable[Table]) -> bool:
    """Fresh planner statistics for `tables` on PostgreSQL (one ANALYZE of them all); nothing
    on SQLite. Returns whether they were analyzed. A failure is logged, not raised: the
    bulk write it follows is done and kept, and autovacuum gets to the tables later."""
    names = sorted({table.name for table in tables})
    if db.is_sqlite or not names:
        return False
    began = time.monotonic()
    try:
        with db.engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            conn.execute(text("ANALYZE " + ", ".join(quote(name) for name in names)))
    except SQLAlchemyError as exc:
        log.warning("ANALYZE %s failed: %s", ", ".join(names), str(exc).splitlines()[0])
        return False
    log.info("analyzed %s in %.1f s", ", ".join(names), time.monotonic() - began)
    return True
