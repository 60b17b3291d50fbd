"""The bus between ticgw's processes (DESIGN.md section 3).

- ``envelope``: the wire format (msgpack maps, PROTOCOL major version) and its codec.
- ``messages``: every topic and command declared once, with its fields; ``describe`` for people.
- ``endpoints``: where each socket lives (ipc:// under the run dir, or tcp:// with CURVE).
- ``sockets``: socket factories with sane options (linger, HWM, ROUTER_MANDATORY, CURVE).
- ``loop``: the one loop per process (poller plus timer heap, ``post`` from worker threads).
- ``client``: Publisher, Subscriber, CommandServer (+ Deferred), CommandClient.
- ``broker``: the XSUB/XPUB event broker (``python -m bus.broker``).
- ``tasklock``: the cross-process "one task at a time" lock.
- ``errors``: error classes named for the reaction they call for.
- ``testing``: helpers for tests (``wait_for``, fake clock, broker subprocess, leak checks).
"""
