"""tracker: self-hosted, privacy-first web analytics."""

from tracker.app import create_app

__all__ = ["create_app"]
