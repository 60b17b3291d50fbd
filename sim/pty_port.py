"""A pseudo-terminal published under a stable path: what the simulated meters and the simulated
modem serve on.

The master side is the device's (non-blocking); the slave is what a reader opens. The device
keeps its own slave fd open, so a reader closing and reopening the port never makes the master
fail with EIO. ``link`` publishes the slave as a symlink (replaced atomically), so a test can
unplug (close the pty, remove the link) and replug (a new pty, the same link).
"""
from __future__ import annotations

import os
import pty
import tty


class PtyPort:
    def __init__(self, link: str | None = None):
        self.link = link
        self.master: int | None = None
        self.slave: int | None = None
        self.slave_name: str | None = None

    @property
    def path(self) -> str:
        return self.link or self.slave_name or ""

    def open(self, configure=None) -> None:
        """A new raw pty; ``configure(slave_fd)`` may set its termios before it is published."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        if configure is not None:
            configure(slave)
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        self.slave_name = os.ttyname(slave)
        if self.link:
            tmp = "%s.tmp%d" % (self.link, os.getpid())
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.symlink(self.slave_name, tmp)
            os.replace(tmp, self.link)

    def close(self) -> None:
        """Close both sides and remove the link if it still points at this pty."""
        if self.link:
            try:
                if os.path.islink(self.link) and os.readlink(self.link) == self.slave_name:
                    os.unlink(self.link)
            except OSError:
                pass
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = None
