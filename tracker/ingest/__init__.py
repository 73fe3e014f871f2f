"""The collector: `parse_event`, then the pipeline's gate -> drop_reason -> enrich ->
SpoolWriter.submit (tracker.ingest.pipeline); the writer then runs `store_hits`.

`init_ingest(app)` registers the HTTP endpoints and the per-process spool and its writer.
"""

from __future__ import annotations

from flask import Flask


def init_ingest(app: Flask) -> None:
    from tracker.ingest import views
    from tracker.ingest.pipeline import Pipeline

    app.extensions["tracker.ingest"] = Pipeline.for_app(app)
    views.register(app)
