"""Pages on the tester's own computer, which the beacon ignores unless the tag allows them.

A newcomer pastes the script tag into a page served from 127.0.0.1, and nothing is
recorded: the beacon does not send from localhost (developers' visits would pollute real
numbers) unless the tag has `data-allow-local`. So when a local page fetches /tracker.js,
the fetch is noted, and a site still waiting for its first pageview says why none came.

The note is a small file in the data directory: every worker process of this server sees
it, and only local pages write it (never a real site's traffic).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

NOTE_FILE = "local-page-seen.json"
# How long a local page's fetch explains a missing pageview.
RECENT_SECONDS = 3600
# The hosts the beacon stays silent on (static/src/tracker.js).
LOCAL_HOST = re.compile(r"localhost|127\.\d+\.\d+\.\d+|::1")


def local_origin(referrer: str | None) -> str | None:
    """The origin (`http://127.0.0.1:5500`) of a page on this computer that sent
    `referrer`, else None."""
    try:
        parts = urlsplit(referrer or "")
        host = parts.hostname
    except ValueError:
        return None
    if not host or not LOCAL_HOST.fullmatch(host):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def note_local_page(data_dir: str, origin: str) -> None:
    """Remember that a local page (`origin`, e.g. http://127.0.0.1:5500) loaded the script."""
    path = Path(data_dir) / NOTE_FILE
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps({"origin": origin, "at": time.time()}))
        os.replace(temporary, path)  # readers never see half a file
    except OSError:
        pass  # a hint for the empty state, never worth failing the script's download


def recent_local_page(data_dir: str) -> str | None:
    """The origin of the local page that loaded the script within the last hour, or None."""
    try:
        note = json.loads((Path(data_dir) / NOTE_FILE).read_text())
        if time.time() - float(note["at"]) <= RECENT_SECONDS:
            return str(note["origin"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None
