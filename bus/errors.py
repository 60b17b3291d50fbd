"""Bus errors, each named for what the caller should do about it."""
from __future__ import annotations


class BusError(Exception):
    """Base class of every bus error."""


class BusTimeout(BusError):
    """No reply in time: the peer is down, busy or restarting. Retry later."""


class RemoteError(BusError):
    """The peer answered with an error: report it (``code`` says which, ``message`` says why)."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__("%s: %s" % (code, message))


class CommandRefused(BusError):
    """Raised by a command handler to refuse cleanly: the caller gets ``{code, message}``.

    ``str()`` is the message alone, so it can be shown to an installer as it is.
    """

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class ProtocolMismatch(BusError):
    """The peer speaks another major version of the bus protocol: upgrade one of the two."""

    def __init__(self, local, remote, detail: str = ""):
        self.local = local
        self.remote = remote
        msg = ("BUS PROTOCOL MISMATCH: this side speaks v%s, the peer speaks v%s; "
               "upgrade the older one" % (local, remote))
        if detail:
            msg += " (%s)" % detail
        super().__init__(msg)


class BadMessage(BusError, ValueError):
    """A message that cannot be decoded or lacks its header: drop it (and count it)."""
