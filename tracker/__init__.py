"""tracker: self-hosted, privacy-first web analytics.

The web app is `tracker.app.create_app`; the command is `tracker.cli`. Nothing is imported
here: each process (the writer, the jobs, a CLI command) loads only what it uses.
"""
