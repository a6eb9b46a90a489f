"""A full disk, whichever way a library reports it, becomes one ``DiskFullError`` (switchyard/disk.py)."""

from __future__ import annotations

import errno

import pytest

from switchyard.disk import DiskFullError, disk_full_errno, writing


def test_full_disk_errors_are_recognised_however_they_arrive():
    assert disk_full_errno(OSError(errno.ENOSPC, "No space left on device")) == errno.ENOSPC
    assert disk_full_errno(OSError(errno.EDQUOT, "Disk quota exceeded")) == errno.EDQUOT
    # safetensors (Rust) puts the OS error in its message
    rust = RuntimeError("Error while serializing: I/O error: File too large (os error 27)")
    assert disk_full_errno(rust) == errno.EFBIG
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("save failed") from inner
    except RuntimeError as wrapped:
        assert disk_full_errno(wrapped) == errno.ENOSPC
    assert disk_full_errno(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full_errno(ValueError("os error 28 is not in parentheses")) is None


def test_writing_removes_the_partial_output_and_raises_a_clear_error():
    removed = []
    with pytest.raises(DiskFullError) as caught, writing("checkpoint step-000010", "/ckpt/step-000010",
                                                         cleanup=lambda: removed.append(True)):
        raise OSError(errno.EFBIG, "File too large")
    assert removed == [True]
    assert caught.value.job_error() == {
        "type": "disk_full", "path": "/ckpt/step-000010", "errno": "EFBIG",
        "message": "disk full while writing checkpoint step-000010 to /ckpt/step-000010 (EFBIG: [Errno 27] File "
                   "too large); free space (or raise the limit) and submit it again"}


def test_writing_passes_other_errors_through_after_cleaning_up():
    removed = []
    with pytest.raises(PermissionError), writing("upload", "/x", cleanup=lambda: removed.append(True)):
        raise PermissionError(errno.EACCES, "Permission denied")
    assert removed == [True]
