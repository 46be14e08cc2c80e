"""Reading a text file the user named: a regular file of UTF-8, or one clear error.

A FIFO, a device or a socket would block a read (``validate`` on a named pipe used to hang)
or never end, so only regular files are read; bytes that are not UTF-8 are an error naming
the file and the offset, not an internal error.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from flowrun.errors import NotText

__all__ = ["NotText", "read_text"]


def read_text(path: str | Path) -> str:
    """The file's text. Raises ``OSError`` (``strerror`` says why; a FIFO or device is
    refused without opening it) or ``NotText``."""
    path = Path(path)
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(mode):
        raise OSError(
            errno.EINVAL, "not a regular file (a pipe, device or socket is not read)", str(path)
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotText(f"not UTF-8 text (byte {exc.start:,} is 0x{data[exc.start]:02x})") from None
