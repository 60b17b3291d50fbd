"""One task at a time across processes (manual 10.3): Détection, Connexion, Mise à jour.

The lock is ``fcntl.flock`` on ``<run dir>/task.lock``; the file holds the running task's name
(first line) and its holder's pid (second line). The kernel frees the lock when its holder dies,
however it dies. A refused acquisition raises :class:`TaskBusy`, a ``CommandRefused`` with code
``busy`` whose message is the manual's sentence, so a command handler can let it through.

``flock`` belongs to the open file: a child forked (without exec) while the lock is held shares
it; the file is opened close-on-exec, so an exec'd child does not.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .endpoints import run_dir as _run_dir
from .errors import CommandRefused

LOCK_FILE = "task.lock"
BUSY_MESSAGE = ("Une tâche '%s' est déjà en cours d'exécution. "
                "Veuillez réessayer dans quelques instants.")


class TaskBusy(CommandRefused):
    """Another task runs: tell the user to try again in a moment (the message says so)."""

    def __init__(self, running: str):
        self.running = running
        super().__init__("busy", BUSY_MESSAGE % running)


class TaskHandle:
    """A held task lock; ``release()`` it, or use it as a context manager."""

    def __init__(self, fd: int, name: str, path: Path):
        self._fd = fd
        self.name = name
        self.path = path

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "TaskHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            self.release()

    def __repr__(self) -> str:
        return "<TaskHandle %r %s>" % (self.name, "held" if self.held else "released")


class TaskLock:
    def __init__(self, run_dir=None):
        self.path = _run_dir(run_dir) / LOCK_FILE

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def acquire(self, name: str) -> TaskHandle:
        """Take the lock for task ``name`` or raise TaskBusy naming the running task."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                running = self._read(fd)
            finally:
                os.close(fd)
            raise TaskBusy(running or "inconnue") from None
        except BaseException:
            os.close(fd)
            raise
        text = ("%s\n%d\n" % (name, os.getpid())).encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        return TaskHandle(fd, name, self.path)

    def current(self) -> str | None:
        """The running task's name, or None when no task runs."""
        fd = self._open()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._read(fd) or "inconnue"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    @staticmethod
    def _read(fd: int) -> str:
        # The holder writes its name just after locking: a reader may come in between and
        # see an empty file; read a few times before giving up on the name.
        for _ in range(100):
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            name = text.split("\n", 1)[0].strip()
            if name:
                return name
        return ""
