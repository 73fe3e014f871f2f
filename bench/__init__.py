"""Benchmarks (not tests): ingest load, stats latency, export, script size, footprint.

Run them all with `make bench` or `python -m bench`; see bench/run.py for the flags.
"""
