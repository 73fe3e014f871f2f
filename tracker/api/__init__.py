"""The JSON Stats API: read-only, Bearer API key, Plausible v1 shaped (thin views over stats)."""

from tracker.api.views import init_api

__all__ = ["init_api"]
