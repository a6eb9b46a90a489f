"""The Celery side: the app, queue topology and pool profiles. No domain logic lives here."""
