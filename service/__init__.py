"""Many tenants on many hosts: change requests in PostgreSQL, run by Procrastinate workers
(docs/service.md). Imports automation, never the reverse; Procrastinate stays behind service/jobs.py
(and Procrastinate's schema behind service/db.py's migrate)."""
