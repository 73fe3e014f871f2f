"""The floor: a bare Flask app answering 204 to everything, under `tracker serve`'s gunicorn.

It runs through tracker.server.TrackerServer itself (only the app differs), so workers,
threads, worker class and timeouts are exactly the collector's. Run it alone with
`python -m bench.bare_app` (settings from TRACKER_* variables, like `tracker serve`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from tracker.config import load_settings
from tracker.server import TrackerServer


def create_bare_app() -> Flask:
    app = Flask(__name__)

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "OPTIONS"])
    @app.route("/<path:path>", methods=["GET", "POST", "OPTIONS"])
    def answer(path: str) -> tuple[str, int]:
        return "", 204

    return app


class BareServer(TrackerServer):
    background = False

    def load(self) -> Any:
        return create_bare_app()


if __name__ == "__main__":
    BareServer(load_settings()).run()
