"""switchyard: an event-driven Celery worker platform for LLM work."""

from switchyard.config import Settings, get_settings
from switchyard.events import Event
from switchyard.jobs import Job, JobStatus

__all__ = ["Event", "Job", "JobStatus", "Settings", "get_settings"]
__version__ = "0.1.0"
