"""Who may use the page: server-side sessions, login back-off, CSRF checks, the password.

Security provisions (ETSI EN 303 645 5.1, OWASP IoT I1/I3/I9, OWASP session management):

- the factory login (the manual's ``userhigh``/``high``) works only while the password is the
  factory one, and then leads only to the password change;
- sessions are server-side: the cookie holds a random 256-bit token and nothing else; a session
  ends after ``IDLE`` seconds without a request and ``ABSOLUTE`` seconds after login, at logout
  and when the password changes; a login always makes a new token;
- login failures are counted per address: from the ``FREE_FAILURES``-th on, each next try
  waits twice as long as the last (capped at ``MAX_WAIT``); each failure is logged;
- a request that changes something must come from the page itself: its ``Origin`` (or
  ``Referer``) is the page's host, and it carries the session's CSRF token (a form field or
  the ``X-CSRF-Token`` header). Browsers do not send ``Sec-Fetch-Site`` to a plain-HTTP LAN
  address, so that header is not relied on.
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ticgw.config.password import DEFAULT_PASSWORD_HASH, check_password, hash_password

log = logging.getLogger("web.auth")

COOKIE = "ticgw_session"
IDLE = 15 * 60
ABSOLUTE = 8 * 3600
FREE_FAILURES = 5
FIRST_WAIT = 2.0
MAX_WAIT = 15 * 60.0
MIN_PASSWORD = 10
FACTORY_PASSWORD = "high"


def _locked(method):
    """Run ``method`` holding its object's lock."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    created: float
    seen: float
    must_change_password: bool = False
    flash: list[tuple[str, str]] = field(default_factory=list)   # (kind, text)


class Sessions:
    """The sessions, shared by the HTTP thread and the bus loop (status): every access holds
    the lock."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.by_token: dict[str, Session] = {}
        self.lock = threading.RLock()

    @_locked
    def open(self, user: str, must_change_password: bool) -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(24), now, now,
                    must_change_password)
        self.by_token[s.token] = s
        return s

    @_locked
    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its idle clock restarted), or None."""
        if not token:
            return None
        s = self.by_token.get(token)
        if s is None:
            return None
        now = self.clock()
        if now - s.seen > IDLE or now - s.created > ABSOLUTE:
            del self.by_token[token]
            return None
        s.seen = now
        return s

    @_locked
    def close(self, token: str | None) -> None:
        self.by_token.pop(token or "", None)

    @_locked
    def close_all(self, keep: str | None = None) -> None:
        for t in [t for t in self.by_token if t != keep]:
            del self.by_token[t]

    @_locked
    def save(self, path) -> None:
        """Keep the live sessions across a restart of the process (the page reconnects after
        *Redémarrer* or *Mise à jour* without a new login): a 0600 file in the run dir, read
        once and removed by :meth:`load`. Ages are kept, not clock readings."""
        now = self.clock()
        live = [{"token": s.token, "user": s.user, "csrf": s.csrf, "age": now - s.created,
                 "idle": now - s.seen, "must_change_password": s.must_change_password,
                 "saved_at": time.time()}
                for s in self.by_token.values()
                if now - s.seen <= IDLE and now - s.created <= ABSOLUTE]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(live, f)

    @_locked
    def load(self, path) -> int:
        try:
            with open(path) as f:
                live = json.load(f)
        except (OSError, ValueError):
            return 0
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        now = self.clock()
        for d in live if isinstance(live, list) else ():
            try:
                down = max(0.0, time.time() - float(d["saved_at"]))    # the time it was away
                s = Session(str(d["token"]), str(d["user"]), str(d["csrf"]),
                            now - float(d["age"]) - down, now - float(d["idle"]) - down,
                            bool(d.get("must_change_password")))
            except (KeyError, TypeError, ValueError):
                continue
            if now - s.seen <= IDLE and now - s.created <= ABSOLUTE:
                self.by_token[s.token] = s
        return len(self.by_token)

    @_locked
    def count(self) -> int:
        now = self.clock()
        return sum(1 for s in self.by_token.values()
                   if now - s.seen <= IDLE and now - s.created <= ABSOLUTE)


class Throttle:
    """Login failures per address, and the wait they impose (shared like Sessions)."""

    def __init__(self, clock=time.monotonic):
        self.lock = threading.RLock()
        self.clock = clock
        self.failures: dict[str, int] = {}
        self.until: dict[str, float] = {}

    @_locked
    def wait(self, address: str) -> float:
        """Seconds before ``address`` may try again (0: now)."""
        return max(0.0, self.until.get(address, 0.0) - self.clock())

    @_locked
    def failed(self, address: str, user: str) -> None:
        n = self.failures.get(address, 0) + 1
        self.failures[address] = n
        if n >= FREE_FAILURES:
            self.until[address] = self.clock() + min(MAX_WAIT,
                                                      FIRST_WAIT * 2 ** (n - FREE_FAILURES))
        log.warning("login failed for %r from %s (%d in a row)", user, address, n)

    @_locked
    def snapshot(self) -> dict[str, int]:
        return dict(self.failures)

    @_locked
    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)
        self.until.pop(address, None)


def is_factory(password_hash: str) -> bool:
    return password_hash == DEFAULT_PASSWORD_HASH


def login_ok(user: str, password: str, settings) -> bool:
    """The user and password match the configuration (in constant time for the password)."""
    user_ok = hmac.compare_digest(user.encode(), settings.web_user.encode())
    return check_password(password, settings.web_password_hash) and user_ok


def new_password_problems(new: str, again: str) -> dict[str, str]:
    """Field -> text key of what is wrong with a new password (empty: fine)."""
    if len(new) < MIN_PASSWORD:
        return {"new": "password.too_short"}
    if new == FACTORY_PASSWORD:
        return {"new": "password.same_as_factory"}
    if new != again:
        return {"again": "password.mismatch"}
    return {}


def make_hash(password: str) -> str:
    return hash_password(password)


def host_allowed(host: str | None) -> bool:
    """The page is asked for by address (an IP literal, or localhost), never by a DNS name:
    a name could be rebound to the gateway by a page of another site (DNS rebinding), whose
    requests would then pass as same-origin."""
    if not host:
        return False
    name = urlsplit("//" + host).hostname or ""
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def same_origin(headers: dict, host: str | None) -> bool:
    """The request came from a page of this host: ``Origin``, else ``Referer``, names it."""
    source = headers.get("Origin") or headers.get("Referer")
    if not source or not host or source == "null":
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())
