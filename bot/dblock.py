"""One bot process per SQLite file.

Two processes on one file would both resume the same approved request after a restart
of either, and write to OKX twice. The lock is an OS file lock (`flock`), so the kernel
releases it when the process ends in any way, SIGKILL included: there is no stale pid
file to clean up. Two locks, both taken or neither:

- on `<database>.lock` beside the real file (symlinks resolved), which also holds the
  holder's pid for the message;
- on the database file itself, so that a hard link (the same file under another name,
  whose lock file would be another) is refused too. SQLite's own locks are `fcntl`
  locks, which `flock` does not touch.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DatabaseInUse(Exception):
    """Another process holds the lock; the message says which."""


class DatabaseLock:
    def __init__(self, database: Path) -> None:
        self.database = database.resolve()  # a symlink's lock is its target's
        self.path = self.database.with_name(self.database.name + ".lock")
        self._files: list[int] = []

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _locked(fd):
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseInUse(f"another bot process (pid {holder}) is using it")
        try:  # (an empty file is an empty SQLite database)
            data = os.open(self.database, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:
            os.close(fd)
            raise
        if not _locked(data):
            os.close(data)
            os.close(fd)
            raise DatabaseInUse("another bot process is using it under another name (a "
                                "hard link to the same file)")
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._files = [fd, data]

    def release(self) -> None:
        for fd in self._files:  # closing drops the lock
            os.close(fd)
        self._files = []


def _locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
