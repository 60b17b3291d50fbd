"""The HTTP "Web Services" of the remote server (reference: webdyn-server-protocol 3.7).

Two services, both an HTTP POST to ``<WebService_Url>/<service>`` with a form body:

- ``initialisation.php``, body ``MAC-ADR=XX:XX:XX:XX:XX:XX``; reply ``ReturnCode##IDsite##``:
  the site ID the server assigns to this gateway (used when ``Site_IdAuto=1``);
- ``confirm.php``, body ``NSITE=<site>&ACTION=<A>&ACTION-COMP=<info>&RC=<rc>&RC-COMP=<info>``;
  reply ``ReturnCode`` (a trailing ``##`` is accepted), telling the server what was done.

Return codes: 00 OK, 10 site unknown, 11 action unknown, 12 RC unknown, 13 MAC address absent,
-1 server error. Anything other than 00, an HTTP error, no answer within the timeout or a reply
that does not follow the format raises :class:`WebServiceError`, whose message is written for an
installer (it names the URL and what to check). Calls block; run them from a worker thread.

``requests`` is imported at a :class:`WebServices`' first call (in the connection's worker),
not with this module: with what it brings (urllib3, charset_normalizer, idna, http.client,
email) it costs a process ~6 MiB, which a gateway whose Web Services are off (the default) never
needs; :func:`gateway_mac` and the helpers do not use it.
"""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_plus, urlsplit, urlunsplit

if TYPE_CHECKING:
    import requests

#: Journal messages, verbatim from the manual (10.3.2); JOURNAL_SITE_OK takes the site ID.
JOURNAL_ERROR = "Erreur Web services"
JOURNAL_SITE_START = "Récupération ID site..."
JOURNAL_SITE_OK = "ID Site %s"
JOURNAL_SITE_ERROR = "Erreur de récupération de l'ID site"

#: ACTION values of confirm.php.
ACTIONS = ("UPLOADDATA", "UPLOADALARM", "UPLOADGLOBAL", "CONFIGGLOBAL", "UPLOADDEF", "CONFIGDEF",
           "CONFIGINV", "CMD", "CONFIGBIN", "VERSION")

#: What each return code means, for the error messages.
RETURN_CODES = {
    "00": "OK",
    "10": "site ID unknown to the server",
    "11": "action unknown to the server",
    "12": "return code (RC) unknown to the server",
    "13": "MAC address missing or not registered on the server",
    "-1": "internal error of the server",
}

MAX_REPLY = 64 * 1024
_SITE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class WebServiceError(Exception):
    """A Web Services call failed. ``code`` is the server's return code (``"13"``, ``"-1"``...)
    or None when there was no usable reply (HTTP error, timeout, malformed reply)."""

    def __init__(self, code: str | None, message: str, url: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.url = url


def service_url(base: str, service: str) -> str:
    """``base`` + ``/`` + ``service``, whether or not ``base`` ends with a slash; a base
    without a scheme gets ``http://``; a query string in the base is kept."""
    base = base.strip()
    if "://" not in base:
        base = "http://" + base
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/" + service
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def encode_form(pairs: list[tuple[str, str]]) -> str:
    """A form body in the given order; ``:`` and ``;`` stay literal (MAC addresses, file lists),
    as in the manual's examples; the rest is escaped as application/x-www-form-urlencoded."""
    return "&".join("%s=%s" % (k, quote_plus(str(v), safe=":;")) for k, v in pairs)


def parse_reply(text: str) -> tuple[str, list[str]]:
    """Split ``ReturnCode##field##...`` into the code and the fields; raise ValueError when the
    first field is not a return code."""
    text = text.lstrip("\ufeff").strip()
    fields = [f.strip() for f in text.split("##")]
    code = fields[0]
    if not re.fullmatch(r"-?\d{1,3}", code):
        raise ValueError("no return code")
    if code.lstrip("-").isdigit() and int(code) == 0:
        code = "00"
    rest = fields[1:]
    while rest and rest[-1] == "":
        rest.pop()
    return code, rest


def gateway_mac(interface: str | None = None) -> str:
    """This machine's MAC address as ``XX:XX:XX:XX:XX:XX`` (uppercase): the one of
    ``interface`` when given (read from /sys/class/net), otherwise ``uuid.getnode()``.

    Note: when no hardware address can be found, ``uuid.getnode()`` returns a random number
    with the multicast bit set; that value is returned as is (it is stable for the process)."""
    if interface:
        text = Path("/sys/class/net", interface, "address").read_text().strip()
        return text.upper()
    node = uuid.getnode()
    return ":".join("%02X" % ((node >> shift) & 0xFF) for shift in range(40, -8, -8))


class WebServices:
    """Client of the server's Web Services at ``url`` (the ``WebService_Url`` setting)."""

    def __init__(self, url: str, timeout: float = 10.0, session: requests.Session | None = None):
        self.url = url
        self.timeout = float(timeout)
        self._session = session     # made at the first call (in the caller's worker thread)

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests  # here, not at the top: see the module's doc
            self._session = requests.Session()
        return self._session

    def initialisation(self, mac: str) -> str:
        """Ask the server for this gateway's site ID; return it."""
        url, code, fields = self._call("initialisation.php", [("MAC-ADR", mac)], need_fields=True)
        self._check_code(url, code, "get the site ID")
        site = fields[0] if fields else ""
        if not site:
            raise WebServiceError(code, "Web Services: %s answered OK but gave no site ID"
                                  % url, url)
        if not _SITE_ID.match(site):
            raise WebServiceError(code, "Web Services: %s gave an unusable site ID %r (letters, "
                                  "digits, '_', '-', '.' only, at most 64)" % (url, site[:80]),
                                  url)
        return site

    def confirm(self, site: str, action: str, comp: str = "", rc: int = 0,
                rc_comp: str = "") -> None:
        """Tell the server that ``action`` was done (``rc`` 0) or failed (``rc`` not 0)."""
        pairs = [("NSITE", site), ("ACTION", action), ("ACTION-COMP", comp), ("RC", str(rc)),
                 ("RC-COMP", rc_comp)]
        url, code, _ = self._call("confirm.php", pairs, need_fields=False)
        self._check_code(url, code, "confirm %s" % action)

    # -- internals ----------------------------------------------------------------------

    def _check_code(self, url: str, code: str, what: str) -> None:
        if code == "00":
            return
        meaning = RETURN_CODES.get(code, "unknown return code")
        raise WebServiceError(code, "Web Services: could not %s: %s answered code %s (%s)"
                              % (what, url, code, meaning), url)

    def _call(self, service: str, pairs: list[tuple[str, str]],
              need_fields: bool) -> tuple[str, str, list[str]]:
        import requests  # made by `session` already

        if not self.url or not self.url.strip():
            raise WebServiceError(None, "Web Services: no server URL configured "
                                  "(WebService_Url is empty)")
        url = service_url(self.url, service)
        body = encode_form(pairs)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        deadline = time.monotonic() + self.timeout
        try:
            with self.session.post(url, data=body.encode("utf-8"), headers=headers,
                                   timeout=self.timeout, stream=True,
                                   allow_redirects=True) as response:
                raw = self._read(response, deadline, url)
                status, reason = response.status_code, response.reason
        except WebServiceError:
            raise
        except requests.exceptions.Timeout:
            raise WebServiceError(None, "Web Services: no answer from %s within %g s"
                                  % (url, self.timeout), url) from None
        except requests.exceptions.ConnectionError as e:
            if "timed out" in str(e):  # a read timeout while streaming the body
                raise WebServiceError(None, "Web Services: no complete answer from %s within "
                                      "%g s" % (url, self.timeout), url) from None
            raise WebServiceError(None, "Web Services: cannot reach %s (%s); check "
                                  "WebService_Url and the network" % (url, _reason(e)),
                                  url) from None
        except requests.exceptions.RequestException as e:
            raise WebServiceError(None, "Web Services: request to %s failed (%s)"
                                  % (url, _reason(e)), url) from None
        if status != 200:
            raise WebServiceError(None, "Web Services: %s answered HTTP %d %s; check "
                                  "WebService_Url" % (url, status, reason or ""), url)
        text = raw.decode("utf-8", errors="replace")
        try:
            code, fields = parse_reply(text)
            if need_fields and "##" not in text:
                raise ValueError("no '##' separator")
        except ValueError:
            shown = text.strip()[:60]
            raise WebServiceError(None, "Web Services: unexpected reply from %s: %r (expected "
                                  "'ReturnCode##...')" % (url, shown), url) from None
        return url, code, fields

    def _read(self, response: requests.Response, deadline: float, url: str) -> bytes:
        """The body, at most MAX_REPLY bytes, within the overall deadline."""
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=4096):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REPLY:
                raise WebServiceError(None, "Web Services: reply from %s is too large "
                                      "(over %d bytes)" % (url, MAX_REPLY), url)
            if time.monotonic() > deadline:
                raise WebServiceError(None, "Web Services: no complete answer from %s within "
                                      "%g s" % (url, self.timeout), url)
        return b"".join(chunks)


def _reason(e: Exception) -> str:
    """A short cause for a requests exception (the innermost message, without the noise)."""
    text = str(e)
    for marker in ("Connection refused", "Name or service not known",
                   "Temporary failure in name resolution", "No route to host",
                   "Network is unreachable", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text[:120]
