"""The collector: `parse_event`, then the pipeline's gate -> drop_reason -> enrich ->
Writer.submit (tracker.ingest.pipeline); storage (tracker.storage) does the rest.

`init_ingest(app)` registers the HTTP endpoints and the pipeline, with its writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_ingest(app: Flask) -> None:
    from tracker.ingest import views
    from tracker.ingest.pipeline import Pipeline

    app.extensions["tracker.ingest"] = Pipeline.for_app(app)
    views.register(app)
