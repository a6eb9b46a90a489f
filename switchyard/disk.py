"""A full disk as one clear error, whichever library was writing (RELIABILITY.md, "Resource faults").

No space left (``ENOSPC``), a file size limit (``EFBIG``) or a quota (``EDQUOT``) reach us as an
``OSError`` from Python's own writes, as a Rust I/O error in a message (safetensors: "... (os error 28)"),
or as nothing recognisable (``torch.save`` to a path says "unexpected pos": serialize to memory and write
the bytes with Python instead). ``writing`` turns the first two into ``DiskFullError`` after removing the
half-written output, so a job fails once with a message that says what to do, and is not retried: a
retry would meet the same full disk.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Callable, Iterator

from switchyard.errors import SwitchyardError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class DiskFullError(SwitchyardError):
    """A write failed for lack of disk space, a file size limit or a quota; its partial output is removed."""

    def __init__(self, what: str, path: str, code: int, detail: str):
        self.what, self.path, self.errno_name = what, path, errno.errorcode.get(code, str(code))
        super().__init__(f"disk full while writing {what} to {path} ({self.errno_name}: {detail}); "
                         "free space (or raise the limit) and submit it again")

    def job_error(self) -> dict[str, str]:
        """The job's ``error`` in the ledger: the reason, no traceback (runner.py)."""
        return {"type": "disk_full", "message": str(self), "path": self.path, "errno": self.errno_name}


def disk_full_errno(exc: BaseException) -> int | None:
    """The errno behind ``exc`` (itself or an exception it wraps) if it means a full disk, else ``None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = current.errno if isinstance(current, OSError) else None
        if code is None and (match := _RUST_OS_ERROR.search(str(current))):
            code = int(match.group(1))
        if code in DISK_FULL_ERRNOS:
            return code
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def writing(what: str, path: str, *, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Run the writes of ``what`` (to ``path``); on any failure run ``cleanup`` (remove the partial
    output), and raise a full disk as ``DiskFullError``."""
    try:
        yield
    except Exception as exc:
        if cleanup is not None:
            with contextlib.suppress(Exception):
                cleanup()
        code = disk_full_errno(exc)
        if code is None:
            raise
        raise DiskFullError(what, path, code, str(exc)) from exc
