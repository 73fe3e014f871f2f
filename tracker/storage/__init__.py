"""Storage: what the collector accepted, kept on disk and stored in the database, in one
direction:

    Writer.submit -> spool (on disk, before the 202) -> drain -> store_hits -> visits, events

- `writer.py`, `Writer.submit(hits, drops, wait_seconds)`: the collector's one call
  (tracker.ingest.pipeline). Appends a batch to this process's spool and returns once it is
  on disk; with `wait_seconds`, also waits until it is in the database. `flush` waits for
  all of it.
- `spool.py`: the line format (a batch of hits and drop counts as JSON), the segment files
  and their stored offsets.
- `drain.py`: the one loop that reads the spool and stores it, in a thread, in `tracker
  serve`'s writer process, or once over what a dead process left (`replay`).
- `store.py`, `store_hits(conn, hits, timeout_ms, drops)`: a batch stored inside the
  caller's transaction (visit assignment, rows, drop counts); `store_transaction` is that
  transaction with the writers' turn on SQLite. An import that must store a file all or
  nothing (tracker.accesslog.load) calls `store_hits` itself, under `WriterFileLock`;
  anything that may be stored moments later goes through `Writer.submit`, in batches of
  at most a thousand events (`tracker import events` does so with `wait_seconds`).
- `visits.py`: `Hit` (an enriched, accepted event) and `VisitAssigner`, the visit rules.
- `changes.py`: the visits of the last past days that `store_hits` changes, recorded in
  the same transaction for the columnar store's provisional parts (tracker.columnar).
"""
