"""The temporary tables of the rollup refresh and the goal-hit backfill, each defined once
per name and columns, and shared by every refresh, site, connection and database.

SQLAlchemy caches a statement's compiled SQL under a key that holds its Table objects by
identity: statements over a Table built anew each refresh were compiled anew each time
(47 statements a refresh, for the ~24 rollup keys' INSERT ... SELECT alone), and pushed
the reports' statements out of the engine's cache (500 entries). Over a shared definition
they are compiled once per process. Each connection still creates its own TEMPORARY
table of that definition, and drops it: only the Python object is shared.

The definitions are few (a name's columns follow from the code and the dialect, not from
the data), so they are kept for the process's life.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Index, MetaData, Table
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import TypeEngine

ColumnSpec = tuple[str, TypeEngine[Any]]

_defined: dict[tuple[Any, ...], Table] = {}
_lock = threading.Lock()


def definition(name: str, columns: Sequence[ColumnSpec], index: Sequence[str] = ()) -> Table:
    """The shared Table of the temporary table `name` with `columns` (name, type), and an
    index `ix_<name>_slice` on the columns `index` (none if empty): create it on a
    connection with `create`, its index with `create_index`.

    # TRICKY: the Table must never be changed after (an Index built on it later would be
    added to it for every refresh to come); hence the index is defined here, once."""
    # A type's class and repr: its arguments (a string's length) make a different table.
    key = (name, tuple((c, type(t), repr(t)) for c, t in columns), tuple(index))
    with _lock:
        table = _defined.get(key)
        if table is None:
            table = Table(
                name, MetaData(), *(Column(c, t) for c, t in columns), prefixes=["TEMPORARY"]
            )
            if index:
                Index(f"ix_{name}_slice", *(table.c[c] for c in index))
            _defined[key] = table
    return table


def create(conn: Connection, table: Table) -> None:
    """CREATE TEMPORARY TABLE on `conn`, without its index: one built after the rows are in
    (`create_index`) costs less than one kept up to date by each insert."""
    conn.execute(CreateTable(table))


def create_index(conn: Connection, table: Table) -> None:
    """The index of `definition` on the temporary table (dropped with it)."""
    for index in table.indexes:
        index.create(conn)
