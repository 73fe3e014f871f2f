"""A site's path dictionary: every path of its parts' events, numbered.

Each event of a part carries its path's number (compiler.PATH_ID), so that DuckDB groups a
page breakdown by integers and names only the rows it grouped (compiler.stored_paths):
with 100k distinct paths, grouping by the text was a third of such a report. A number is
the path's row in the dictionary's file and never changes: a build appends the paths it
meets first to the end and writes the whole dictionary again as a new file, which the new
manifest names (`Manifest.paths`), as immutable as the parts that use it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tracker.stats.compiler import PATH_ID

SCHEMA = pa.schema([pa.field(PATH_ID, pa.int64()), pa.field("path", pa.string())])


class PathDictionary:
    """The numbers of the paths a site's parts hold, growing as a build meets new ones."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.numbers = {path: number for number, path in enumerate(paths)}
        self.known = len(paths)  # how many the file it was read from holds

    @classmethod
    def read(cls, directory: Path, name: str) -> PathDictionary:
        """The dictionary of the file `name` ("": a site without one yet, empty)."""
        if not name:
            return cls([])
        return cls(pq.read_table(directory / name, columns=["path"]).column("path").to_pylist())

    @property
    def grown(self) -> bool:
        return len(self.paths) > self.known

    def numbered(self, paths: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """Each path's number (NULL for a NULL path), numbering the new ones."""
        distinct = pc.drop_null(pc.unique(paths))
        numbers = pa.array([self._number(p) for p in distinct.to_pylist()], pa.int64())
        return pc.take(numbers, pc.index_in(paths, value_set=distinct))

    def _number(self, path: str) -> int:
        number = self.numbers.get(path)
        if number is None:
            number = self.numbers[path] = len(self.paths)
            self.paths.append(path)
        return number

    def write(self, directory: Path, built_ms: int) -> str:
        """The whole dictionary into a new file of `directory`; its name."""
        name = f"paths_{built_ms}_{secrets.token_hex(3)}.parquet"
        numbers = pa.array(range(len(self.paths)), pa.int64())
        table = pa.table([numbers, pa.array(self.paths, pa.string())], schema=SCHEMA)
        pq.write_table(table, directory / name, compression="zstd")
        self.known = len(self.paths)
        return name
