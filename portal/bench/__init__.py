"""Load benchmarks of the portal, run by ``manage.py bench``.

A benchmark starts its own stack (stampsim, a Celery worker, gunicorn) on the database
and broker of the current settings, builds what it needs through the API, and drives
the HTTP API with concurrent clients. ``docs/benchmarks.md`` records results.
"""
