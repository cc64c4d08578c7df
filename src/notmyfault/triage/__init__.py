"""Fleet triage: many dumps analysed in worker processes, stored one row each, grouped into buckets
(by the signature of notmyfault.analysis.signature, the one analyze prints as BUCKET_ID).

worker.py     a warm analysis process per worker, with a time and a memory limit per dump
record.py     one dump's analysis turned into the row that is stored
db.py         SQLite (default) or PostgreSQL, the same schema and migrations
ingest.py     finding dumps, skipping known ones, running them locally or on a Dask cluster
report.py     the self-contained HTML report
"""
