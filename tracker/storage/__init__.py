"""Storage: what the collector accepted, kept on disk (the spool) and stored in the database
(visit assignment, rows, drop counts), moments later, by a writer.
"""
