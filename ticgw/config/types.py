"""Value types of configuration keys: each turns the text of an INI value into a typed value
(or says in plain English why it cannot) and back into text.

A type's ``parse`` raises :class:`BadValue` with a reason an installer understands; ``format`` is
its exact inverse for every value ``parse`` accepts, so rendered files load back equal.
"""
from __future__ import annotations

import ipaddress
import re

__all__ = [
    "BadValue", "ValueType", "Text", "Int", "Bool", "Choice", "IPv4", "Netmask", "Host", "Url",
    "FtpDir", "FileName", "SerialPort", "Baud", "Endpoint", "Listen", "Z85Key", "HexKey",
    "PasswordHash", "BAUD_RATES",
]

BAUD_RATES = (1200, 2400, 4800, 9600, 19200)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_Z85 = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


class BadValue(ValueError):
    """A value that cannot be accepted; the message is the reason, for an installer."""


def _show(text: str) -> str:
    return repr(text) if text == "" or text != text.strip() or " " in text else text


class ValueType:
    """Base: free text. Subclasses override ``check`` (text -> value) and ``format``."""

    #: What the values look like, for the key table.
    doc = "text"

    def __init__(self, *, empty: bool = False, max_len: int = 128):
        self.empty = empty          # the empty string is accepted (means "not set")
        self.max_len = max_len

    def parse(self, text: str):
        if _CONTROL.search(text):
            raise BadValue("contains control characters")
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise BadValue("contains characters outside Latin-1") from None
        if len(text) > self.max_len:
            raise BadValue("is %d characters long, at most %d allowed" % (len(text), self.max_len))
        if text == "":
            if self.empty:
                return self.empty_value()
            raise BadValue("is empty; expected %s" % self.doc)
        return self.check(text)

    def empty_value(self):
        return ""

    def check(self, text: str):
        return text

    def format(self, value) -> str:
        return "" if value is None else str(value)

    def values_doc(self) -> str:
        return self.doc + (", or empty" if self.empty else "")


class Text(ValueType):
    def __init__(self, *, empty: bool = True, max_len: int = 128, pattern: str | None = None,
                 doc: str = "text"):
        super().__init__(empty=empty, max_len=max_len)
        self.pattern = re.compile(pattern + r"\Z") if pattern else None
        self.doc = doc

    def check(self, text: str):
        if self.pattern and not self.pattern.match(text):
            raise BadValue("%s is not valid: expected %s" % (_show(text), self.doc))
        return text


class Int(ValueType):
    def __init__(self, lo: int, hi: int, unit: str = ""):
        super().__init__(empty=False, max_len=12)
        self.lo, self.hi, self.unit = lo, hi, unit
        self.doc = "whole number %d..%d%s" % (lo, hi, (" " + unit) if unit else "")

    def check(self, text: str):
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise BadValue("%s is not a whole number (expected %d..%d)"
                           % (_show(text), self.lo, self.hi))
        n = int(text)
        if not self.lo <= n <= self.hi:
            raise BadValue("%d is out of range %d..%d" % (n, self.lo, self.hi))
        return n


class Bool(ValueType):
    doc = "0 or 1"

    def __init__(self):
        super().__init__(empty=False, max_len=1)

    def parse(self, text: str):
        if text not in ("0", "1"):
            raise BadValue("%s is not 0 or 1" % _show(text))
        return text == "1"

    def format(self, value) -> str:
        return "1" if value else "0"


class Choice(ValueType):
    def __init__(self, *choices: str):
        super().__init__(empty=False, max_len=32)
        self.choices = choices
        self.doc = " or ".join(", ".join(choices).rsplit(", ", 1))

    def check(self, text: str):
        if text not in self.choices:
            raise BadValue("%s is not one of: %s" % (_show(text), ", ".join(self.choices)))
        return text


class IPv4(ValueType):
    doc = "IPv4 address (a.b.c.d)"

    def __init__(self, *, empty: bool = False):
        super().__init__(empty=empty, max_len=15)

    def check(self, text: str):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise BadValue("%s is not an IPv4 address (a.b.c.d)" % _show(text)) from None


class Netmask(IPv4):
    doc = "IPv4 network mask (e.g. 255.255.255.0)"

    def check(self, text: str):
        addr = super().check(text)
        bits = int(ipaddress.IPv4Address(addr))
        inverted = ~bits & 0xFFFFFFFF
        if inverted & (inverted + 1):
            raise BadValue("%s is not a network mask (its 1 bits must come first)" % addr)
        return addr


class Host(ValueType):
    doc = "host name or IP address"

    def __init__(self, *, empty: bool = True):
        super().__init__(empty=empty, max_len=253)

    def check(self, text: str):
        try:
            ipaddress.ip_address(text)
            return text
        except ValueError:
            pass
        if re.fullmatch(r"[0-9.]+", text) or not _HOSTNAME.match(text):
            raise BadValue("%s is not a host name or IP address" % _show(text))
        return text


class HostPort(Host):
    """A host, optionally with `:port` (an NTP server on a non-standard port: demos, tests)."""

    doc = "host name or IP address, optionally :port"

    def check(self, text: str):
        host, sep, port = text.rpartition(":")
        if sep and port.isdigit() and "]" not in port and host and ":" not in host:
            if not 1 <= int(port) <= 65535:
                raise BadValue("%s: port must be 1..65535" % _show(text))
            super().check(host)
            return text
        return super().check(text)


class Url(ValueType):
    doc = "http:// or https:// URL"

    def __init__(self, *, empty: bool = True):
        super().__init__(empty=empty, max_len=256)

    def check(self, text: str):
        m = re.fullmatch(r"(https?)://([^/\s:]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?(/\S*)?", text)
        if not m:
            raise BadValue("%s is not an http:// or https:// URL" % _show(text))
        if m.group(3) and not 1 <= int(m.group(3)[1:]) <= 65535:
            raise BadValue("%s has a port out of range 1..65535" % _show(text))
        return text


class FtpDir(ValueType):
    doc = ("directory on the FTP server: absolute (/DATA) or relative to the login directory "
           "(DATA)")

    def __init__(self):
        super().__init__(empty=False, max_len=128)

    def check(self, text: str):
        parts = text.strip("/").split("/")
        if ".." in parts or "." in parts or "\\" in text or "//" in text:
            raise BadValue("%s must not contain '.', '..', '//' or backslashes" % _show(text))
        if text.strip("/") == "" and text != "/":
            raise BadValue("%s is not a directory" % _show(text))
        return text


class Fingerprint(ValueType):
    doc = ("SHA-256 of the server's certificate, 64 hexadecimal digits, with or without colons "
           "(openssl x509 -fingerprint -sha256)")

    def __init__(self):
        super().__init__(empty=True, max_len=95)

    def check(self, text: str):
        digits = text.replace(":", "")
        if not re.fullmatch(r"[0-9A-Fa-f]{64}", digits):
            raise BadValue("is not %s" % self.doc)
        return digits.lower()


class FilePath(ValueType):
    doc = "absolute path of a file on the gateway"

    def __init__(self, *, max_len: int = 255):
        super().__init__(empty=True, max_len=max_len)

    def check(self, text: str):
        if not text.startswith("/"):
            raise BadValue("%s must be an absolute path (e.g. /etc/ticgw/ftp-ca.pem)" % _show(text))
        return text


class FileName(ValueType):
    doc = "file name without directory"

    def __init__(self, *, max_len: int = 59):
        super().__init__(empty=True, max_len=max_len)

    def check(self, text: str):
        if "/" in text or "\\" in text or text in (".", ".."):
            raise BadValue("%s must be a plain file name, without a directory" % _show(text))
        return text


class SerialPort(ValueType):
    doc = "serial device (/dev/ttyUSB0, COM3) or pyserial URL (socket://host:port, rfc2217://...)"

    def __init__(self):
        super().__init__(empty=True, max_len=256)

    def check(self, text: str):
        if text.startswith("/") or re.fullmatch(r"COM[0-9]+", text):
            return text
        if re.fullmatch(r"[a-z][a-z0-9+_-]*://\S*", text):
            return text
        raise BadValue("%s is neither a device path (/dev/...) nor a pyserial URL (scheme://...)"
                       % _show(text))


class Baud(ValueType):
    doc = "auto or " + ", ".join(str(b) for b in BAUD_RATES)

    def __init__(self):
        super().__init__(empty=False, max_len=8)

    def check(self, text: str):
        if text == "auto":
            return "auto"
        if text.isdigit() and int(text) in BAUD_RATES:
            return int(text)
        raise BadValue("%s is not auto or one of %s" % (_show(text),
                                                       ", ".join(str(b) for b in BAUD_RATES)))


class Endpoint(ValueType):
    doc = "ZeroMQ endpoint ipc://PATH or tcp://HOST:PORT"

    def __init__(self):
        super().__init__(empty=True, max_len=256)

    def check(self, text: str):
        if re.fullmatch(r"ipc://\S+", text):
            return text
        m = re.fullmatch(r"tcp://(\*|[^\s:\[\]]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5})", text)
        if not m:
            raise BadValue("%s is not ipc://PATH or tcp://HOST:PORT" % _show(text))
        if not 1 <= int(m.group(2)) <= 65535:
            raise BadValue("%s has a port out of range 1..65535" % _show(text))
        return text


class Listen(ValueType):
    doc = "HOST:PORT to listen on (e.g. 127.0.0.1:8080, 0.0.0.0:80)"

    def __init__(self):
        super().__init__(empty=False, max_len=64)

    def check(self, text: str):
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise BadValue("%s is not HOST:PORT with a port 1..65535" % _show(text))
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            if not _HOSTNAME.match(bare):
                raise BadValue("%s: %s is not an IP address or host name"
                               % (_show(text), _show(host))) from None
        return text


class Z85Key(ValueType):
    doc = "CURVE key, 40 characters of Z85"

    def __init__(self):
        super().__init__(empty=True, max_len=40)

    def check(self, text: str):
        if not _Z85.match(text):
            raise BadValue("is not a CURVE key (40 characters of Z85, as made by "
                           "zmq.curve_keypair())")
        return text


class HexKey(ValueType):
    def __init__(self, nbytes: int, what: str):
        super().__init__(empty=True, max_len=2 * nbytes)
        self.nbytes = nbytes
        self.doc = "%s, %d hexadecimal digits" % (what, 2 * nbytes)

    def check(self, text: str):
        if not re.fullmatch(r"[0-9A-Fa-f]{%d}" % (2 * self.nbytes), text):
            raise BadValue("is not %s" % self.doc)
        return text.lower()


class PasswordHash(ValueType):
    doc = "pbkdf2_sha256$ITERATIONS$SALT_HEX$HASH_HEX (see ticgw.config.hash_password)"

    def __init__(self):
        super().__init__(empty=False, max_len=256)

    def check(self, text: str):
        if not re.fullmatch(r"pbkdf2_sha256\$[1-9][0-9]{0,8}\$([0-9a-f]{2}){8,64}\$[0-9a-f]{64}",
                            text):
            raise BadValue("is not a password hash of the form "
                           "pbkdf2_sha256$ITERATIONS$SALT_HEX$HASH_HEX")
        return text
