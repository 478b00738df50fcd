"""One line for every error a user can cause: bad input, the filesystem, a damaged file.

Every entry point runs its work inside :func:`one_line_errors`, which turns the exceptions that describe
a problem with the user's input or machine (``ValueError``, ``OSError`` and their kinds) into
``SystemExit("error: ...")``: one line, exit status 1. Anything else (a bug) keeps its traceback.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re

# What to do about an OSError, by errno; the message names the path.
_ADVICE = {
    errno.EACCES: "permission denied: give this user access to it, or choose another path",
    errno.EPERM: "operation not permitted: give this user access to it, or choose another path",
    errno.EROFS: "read-only file system: choose a writable folder",
    errno.ENOSPC: "no space left on device: free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists (and is not a folder this command may use)",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error: the disk or network file system failed",
}


class WriteError(OSError):
    """A file could not be written; the message names the file and says what was kept."""


def os_error_message(error: OSError) -> str:
    """``<path>: <what happened and what to do>`` for an OSError raised by the OS."""
    if isinstance(error, WriteError) or error.errno is None:
        return first_line(error)
    advice = _ADVICE.get(error.errno, (error.strerror or os.strerror(error.errno)).lower())
    paths = [p for p in (error.filename, error.filename2) if p is not None]
    where = " -> ".join(os.fsdecode(p) for p in paths)
    return f"{where}: {advice}" if where else advice


def first_line(error: BaseException) -> str:
    """A message on one line. DataLoader workers fold the worker's traceback into the message (the real
    message is its last line); torch's weights_only refusal spreads its reason over several lines."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and "Traceback (most recent call last)" in text:
        return re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1])  # the worker's "ImageDecodeError: ..."
    return " ".join(lines)


def message(error: BaseException) -> str:
    if isinstance(error, OSError):
        return os_error_message(error)
    return first_line(error)


@contextlib.contextmanager
def one_line_errors(*extra: type[BaseException]):
    """Turn user-caused errors into ``SystemExit("error: <one line>")``."""
    try:
        yield
    except SystemExit:
        raise
    except (ValueError, OSError, *extra) as e:
        raise SystemExit(f"error: {message(e)}") from None
