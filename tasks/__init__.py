"""Celery tasks, one module per queue. Each is thin: decode, call one ``switchyard`` function, return."""
