"""Enrichment: what an event's request says about its visitor (device, place, source, id)."""
