"""The vendored public source lists: Matomo's search engines, social networks and AI
assistants (github.com/matomo-org/searchengine-and-social-list, CC0-1.0; notice in
tracker/data/LICENSES/), converted to tracker/data/source_lists.json.

Only host names are kept (what a referrer can be matched on); entries naming a path
(`x.com/i/grok`) are left out, since a referrer's path is not looked at. `{}` stands for a
country code: `google.{}` becomes our `google.*`, `{}.google.com` is covered by the host
itself (a host matches its subdomains). Our own tracker/data/sources.toml is read first,
so its names and categories win for any host both list.

To update, with PyYAML installed (`pip install pyyaml`) and a checkout of that repository:

    python -m tracker.enrich.source_lists PATH/TO/searchengine-and-social-list [COMMIT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

OUTPUT = Path(__file__).resolve().parent.parent / "data" / "source_lists.json"
FILES = {"SearchEngines.yml": "search", "Socials.yml": "social", "AIAssistants.yml": "ai"}
ORIGIN = "https://github.com/matomo-org/searchengine-and-social-list"


def host_pattern(url: str) -> str | None:
    """A list's url as one of our host patterns; None when it names a path."""
    url = url.strip().lower().removeprefix("android-app://")
    if "/" in url or not url:
        return None
    url = url.removeprefix("www.").removeprefix("{}.")
    if url.endswith(".{}"):
        url = url[:-3] + ".*"
    return None if "{}" in url else url


def _urls(definition: Any) -> list[str]:
    """Search engines list configurations of urls; the other lists list urls."""
    urls: list[str] = []
    for item in definition or ():
        urls.extend(item.get("urls", ()) if isinstance(item, dict) else [item])
    return urls


def convert(lists: dict[str, dict[str, Any]], commit: str) -> dict[str, Any]:
    sources = []
    for file_name, category in FILES.items():
        for name, definition in lists[file_name].items():
            hosts = sorted({h for u in _urls(definition) if (h := host_pattern(str(u)))})
            if hosts:
                sources.append({"name": unquote(str(name)), "category": category, "hosts": hosts})
    return {
        "about": f"Converted from {ORIGIN} at {commit or 'an unrecorded commit'} (CC0-1.0) "
        "by tracker/enrich/source_lists.py; do not edit by hand.",
        "sources": sources,
    }


def render(data: dict[str, Any]) -> str:
    """One source per line, so an update's diff reads entry by entry."""
    lines = [json.dumps(s, ensure_ascii=False) for s in data["sources"]]
    about = json.dumps(data["about"], ensure_ascii=False)
    return '{"about": ' + about + ',\n"sources": [\n' + ",\n".join(lines) + "\n]}\n"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import yaml
    except ImportError:
        print("source_lists: reading the lists needs PyYAML (pip install pyyaml)", file=sys.stderr)
        return 1
    folder = Path(argv[0])
    lists = {name: yaml.safe_load((folder / name).read_text("utf-8")) for name in FILES}
    data = convert(lists, argv[1] if len(argv) > 1 else "")
    OUTPUT.write_text(render(data), "utf-8")
    print(f"wrote {len(data['sources'])} sources to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
