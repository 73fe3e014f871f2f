"""Files read while the server runs and replaced beside it (GeoIP database, spam list,
columnar manifests): which version of such a file is there now."""

from __future__ import annotations

import os
from pathlib import Path

# (device, inode, size, modification time in ns): a file replaced by os.replace gets
# another inode; one rewritten in place another size or time.
FileVersion = tuple[int, int, int, int]


def file_version(path: str | Path) -> FileVersion | None:
    """The file's version now, or None when it cannot be read (missing, no permission)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
