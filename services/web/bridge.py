"""Between the two loops of the web process: the service's bus loop and the HTTP server's
asyncio loop (its own thread).

- :class:`Hub`: the live pages. Each open event stream has a bounded queue; the bus side
  ``broadcast``s, the streams read. A page too slow to read loses its oldest events (and is
  told to reload), never the others' nor the bus loop's time.
- :class:`Bridge`: from a request handler, a command to another service or a job for the
  service's disk worker, awaited without blocking either loop.
"""
from __future__ import annotations

import asyncio
import collections
import logging

log = logging.getLogger("web.bridge")

#: Events a stream may fall behind by before its oldest are dropped.
STREAM_BACKLOG = 500
#: Events kept for a page that opens its stream after it was rendered (``since``).
REPLAY = 1000


class Stream:
    def __init__(self, hub: "Hub"):
        self.hub = hub
        self.queue: collections.deque = collections.deque(maxlen=STREAM_BACKLOG)
        self.ready = asyncio.Event()
        self.dropped = False

    def put(self, item) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped = True
        self.queue.append(item)
        self.ready.set()

    async def get(self, timeout: float):
        """The next (event, data), or None after ``timeout`` s without one (a keep-alive)."""
        if not self.queue:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self.queue.popleft() if self.queue else None

    def close(self) -> None:
        self.hub.streams.discard(self)


class Hub:
    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.streams: set[Stream] = set()
        self.recent: collections.deque = collections.deque(maxlen=REPLAY)

    def open(self, since: int | None = None) -> Stream:
        """A stream; with ``since`` (the number of the snapshot a page was rendered from),
        the events after it come first. None when they are no longer all kept (the page must
        be rendered again)."""
        s = Stream(self)
        if since is not None:
            if self.recent and self.recent[0][2] > since + 1:
                return None
            for item in self.recent:
                if item[2] > since:
                    s.put(item)
        self.streams.add(s)
        return s

    def broadcast(self, item) -> None:
        """From any thread: every open stream gets ``item`` (event, data, number)."""
        if self.loop is None or self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self._fan_out, item)
        except RuntimeError:                 # the loop is closing
            pass

    def _fan_out(self, item) -> None:
        self.recent.append(item)
        for s in list(self.streams):
            s.put(item)


def _settler(future: asyncio.Future):
    """A callback for another thread that settles ``future`` on its own loop with an outcome
    (a result, or the exception the runtime passes for a failure)."""
    aio = future.get_loop()

    def settle(outcome):
        def set_it():
            if future.done():
                return
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        aio.call_soon_threadsafe(set_it)
    return settle


class Bridge:
    def __init__(self, service):
        self.service = service

    async def call(self, service: str, method: str, params: dict | None = None,
                   timeout: float = 5.0):
        """A command to another service, from the HTTP loop; raises what the call raised."""
        future = asyncio.get_running_loop().create_future()
        self.service.loop.post(self.service.call, service, method, params or {},
                               _settler(future), timeout)
        return await future

    async def disk(self, fn, *args):
        """``fn(*args)`` in the service's disk worker (configuration writes, file reads)."""
        future = asyncio.get_running_loop().create_future()
        done = _settler(future)
        self.service.loop.post(lambda: self.service.disk.submit(
            lambda job: fn(*args), on_done=done, name=getattr(fn, "__name__", "web")))
        return await future
