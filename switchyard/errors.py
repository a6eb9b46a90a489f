"""One hierarchy for switchyard's errors; HTTP mapping lives in ``switchyard.api``."""

from __future__ import annotations


class SwitchyardError(Exception):
    """Root of every error switchyard raises on purpose."""


class ConfigurationError(SwitchyardError):
    """A required setting is missing or malformed."""


class UnknownTaskError(SwitchyardError):
    """No task of that name is registered."""


class InvalidParamsError(SwitchyardError):
    """A job's parameters failed their schema; ``errors`` holds pydantic's field errors."""

    def __init__(self, task: str, errors: list[dict]):
        self.task = task
        self.errors = errors
        super().__init__(f"invalid parameters for {task}: {errors}")


class NotFoundError(SwitchyardError):
    """The object a caller named does not exist (or is another tenant's); the API answers 404.

    Each domain names its own beside the code that raises it: ``ThreadNotFoundError``,
    ``CollectionNotFoundError``, ``AdapterNotFoundError``, ``UploadedFileNotFoundError``,
    ``ModelNotFoundError``.
    """


class JobNotFoundError(NotFoundError):
    """No job has that id."""


class JobStopped(SwitchyardError):
    """Raised inside a running job at a step boundary when it must stop; subclasses say why."""


class JobCancelled(JobStopped):
    """The job was cancelled; it ends ``cancelled``."""


class WorkerShuttingDown(JobStopped):
    """The worker got SIGTERM; the job checkpoints and goes back to the queue."""


class LeaseLost(JobStopped):
    """Another worker took over this job (our lease expired); stop without touching the ledger."""


class SignatureError(SwitchyardError):
    """A webhook signature is missing, malformed, stale or wrong."""


class InputRefused(SwitchyardError):
    """A path, URL or value a caller named is outside the input policy; ``rule`` names the rule."""

    def __init__(self, message: str, rule: str):
        self.rule = rule
        super().__init__(message)


class QueueFullError(SwitchyardError):
    """A queue holds its configured maximum of queued jobs; retry after ``retry_after`` seconds."""

    def __init__(self, queue: str, depth: int, limit: int, retry_after: int):
        self.queue = queue
        self.depth = depth
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"queue {queue!r} is full ({depth} queued jobs, limit {limit}); "
                         f"retry in {retry_after}s")
