"""The configuration keys: every key declared once, with its file, type, default, help.

The key names are a public interface: server operators write them into the three INI files. They
follow the Webdyn names where those are known (DESIGN section 7). Array keys ``NAME[n]`` are
declared once with ``count``; :data:`KEYS` holds them expanded, ``TIC_Port[1]`` .. ``TIC_Port[3]``.
Defaults are written as text and go through their type like any file value, so a bad default
fails the tests, not a gateway.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .. import registry
from . import types as t
from .password import DEFAULT_PASSWORD_HASH

__all__ = ["KINDS", "N_INPUTS", "Key", "DECLARED", "KEYS", "BY_NAME", "INPUT_ATTRS",
           "keys_of", "snake"]

#: File kinds, in the order they are loaded and shown; the file is ``<site>_<kind>.ini``.
KINDS = ("config", "daq", "var")
#: Number of TIC inputs (array keys are NAME[1] .. NAME[N_INPUTS]).
N_INPUTS = 3


def snake(name: str) -> str:
    """``FTP_DirConfig`` -> ``ftp_dir_config``, ``Spool_MaxMB`` -> ``spool_max_mb``."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return s.lower()


@dataclass(frozen=True)
class Key:
    name: str              # as written in the file (TIC_Port[2] once expanded)
    kind: str              # config, daq or var
    type: t.ValueType
    default: str           # text, as in a file
    help: str              # one line, English
    group: str             # comment header in rendered files
    secret: bool = False   # masked as **** in logs and describe()
    count: int = 0         # > 0: an array NAME[1..count] (declared form only)
    attr: str = ""         # Settings field (TicInput field for arrays); default snake(name)
    index: int = 0         # array index once expanded (1-based), 0 for a scalar

    @property
    def base(self) -> str:
        """The declared name: ``TIC_Port`` for ``TIC_Port[2]``."""
        return self.name.split("[", 1)[0]


def _k(name, kind, vtype, default, help, group, **kw) -> Key:
    return Key(name, kind, vtype, str(default), help, group, **kw)


_SITE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}"
_DIAL = r"[0-9*#+]{1,32}"
_PIN = r"[0-9]{4,8}"
_SERIAL = r"[0-9A-Za-z]{1,20}"

_C, _D, _V = "config", "daq", "var"

DECLARED: tuple[Key, ...] = (
    # ---- <site>_config.ini ----------------------------------------------------------------------
    _k("Site_Id", _C, t.Text(empty=True, max_len=40, pattern=_SITE,
                             doc="letters, digits, '-', '_' or '.', at most 40"),
       "WEBDYN", "Site identifier; prefix of every file name on the server; may be empty when "
       "Site_IdAuto=1 (fetched at the next connection; files are named WEBDYN until then)",
       "Site"),
    _k("Site_IdAuto", _C, t.Bool(), 0,
       "1: fetch the site identifier from the Web Services at each connection "
       "(needs WebService_Enable=1)", "Site"),
    _k("Connection_Mode", _C, t.Choice("ethernet", "modem"), "ethernet",
       "How the gateway reaches the server: through Ethernet or through the cellular modem",
       "Connection mode"),
    _k("ETH_Address", _C, t.IPv4(), "192.168.1.12", "Ethernet IP address of the gateway",
       "Ethernet"),
    _k("ETH_Mask", _C, t.Netmask(), "255.255.255.0", "Ethernet network mask", "Ethernet"),
    _k("ETH_Gateway", _C, t.IPv4(), "0.0.0.0",
       "Ethernet default gateway (the router or ADSL box); 0.0.0.0 for none", "Ethernet"),
    _k("ETH_Dns", _C, t.IPv4(), "0.0.0.0", "DNS server address; 0.0.0.0 for none", "Ethernet"),
    _k("Modem_Port", _C, t.SerialPort(), "",
       "Serial port of the cellular modem's AT interface (device path or pyserial URL); "
       "required when Connection_Mode=modem", "Modem"),
    _k("Modem_RecoveryMax", _C, t.Int(1, 100), 6,
       "Recovery steps a day at most (redial, radio off and on, module reset) before the modem "
       "waits, with an alarm, for the next day or a new configuration", "Modem"),
    _k("SIM_Pin", _C, t.Text(max_len=8, pattern=_PIN, doc="4 to 8 digits"), "",
       "PIN code of the SIM card; empty when the SIM has no PIN", "Modem", secret=True),
    _k("GPRS_Number", _C, t.Text(empty=False, max_len=32, pattern=_DIAL,
                                 doc="digits, '*', '#' or '+'"),
       "*99***1#", "Number dialled to open the packet data link", "Modem"),
    _k("GPRS_Apn", _C, t.Text(max_len=100), "", "Access point name (APN) of the mobile operator",
       "Modem"),
    _k("GPRS_Login", _C, t.Text(max_len=64), "", "User name for the APN, if the operator needs one",
       "Modem"),
    _k("GPRS_Password", _C, t.Text(max_len=64), "", "Password for the APN", "Modem", secret=True),
    _k("FTP_Server", _C, t.Host(), "", "Host name or IP address of the remote FTP server",
       "FTP server"),
    _k("FTP_Port", _C, t.Int(1, 65535), 21, "TCP port of the FTP server", "FTP server"),
    _k("FTP_Login", _C, t.Text(max_len=64), "", "User name on the FTP server", "FTP server"),
    _k("FTP_Password", _C, t.Text(max_len=64), "", "Password on the FTP server", "FTP server",
       secret=True),
    _k("FTP_Tls", _C, t.Bool(), 0, "1: protect the FTP session with explicit TLS (FTPS)",
       "FTP server"),
    _k("FTP_TlsFingerprint", _C, t.Fingerprint(), "",
       "SHA-256 fingerprint of the FTP server's certificate: when set, that certificate and no "
       "other is accepted, whatever its chain and names (for a self-signed certificate)",
       "FTP server"),
    _k("FTP_TlsCaFile", _C, t.FilePath(), "",
       "PEM file of certificates to trust for the FTP server, besides the system's (an "
       "integrator's own CA, or the server's self-signed certificate itself)", "FTP server"),
    _k("FTP_Passive", _C, t.Bool(), 1, "1: passive mode FTP transfers (0: active mode)",
       "FTP server"),
    _k("FTP_Pipelining", _C, t.Bool(), 1,
       "1: send FTP commands that do not depend on each other back to back, one round trip "
       "for several (0: one at a time, for a server or a router that mishandles it)",
       "FTP server"),
    _k("FTP_Timeout", _C, t.Int(5, 600, "s"), 30,
       "Seconds without an answer from the FTP server before a transfer is counted as failed",
       "FTP server"),
    _k("FTP_DirConfig", _C, t.FtpDir(), "/CONFIG", "Server directory of the configuration files",
       "FTP directories"),
    _k("FTP_DirDef", _C, t.FtpDir(), "/DEF", "Server directory of the definition files",
       "FTP directories"),
    _k("FTP_DirData", _C, t.FtpDir(), "/DATA", "Server directory of the data files",
       "FTP directories"),
    _k("FTP_DirAlarm", _C, t.FtpDir(), "/ALARM", "Server directory of the alarm files",
       "FTP directories"),
    _k("FTP_DirCmd", _C, t.FtpDir(), "/CMD",
       "Server directory of the command and acknowledgement files", "FTP directories"),
    _k("FTP_DirLog", _C, t.FtpDir(), "/LOG", "Server directory of the log files",
       "FTP directories"),
    _k("FTP_DirBin", _C, t.FtpDir(), "/BIN", "Server directory of the firmware packages",
       "FTP directories"),
    _k("FTP_EuroDateFormat", _C, t.Bool(), 1,
       "Date-time in data, alarm and acknowledgement files: 1 gives DD/MM/YY-hh:mm:ss, "
       "0 gives YY/MM/DD-hh:mm:ss (UTC either way)", "FTP directories"),
    _k("NTP_Server1", _C, t.HostPort(), "pool.ntp.org", "Main NTP server, asked at each connection",
       "Time"),
    _k("NTP_Server2", _C, t.HostPort(), "", "Backup NTP server, asked when the main one fails",
       "Time"),
    _k("WebService_Enable", _C, t.Bool(), 0,
       "1: call the HTTP Web Services (site identifier, confirmations)", "Web Services"),
    _k("WebService_Url", _C, t.Url(), "",
       "Base URL of the Web Services; required when WebService_Enable=1", "Web Services"),
    _k("BIN_FileName", _C, t.FileName(max_len=128), "",
       "Firmware package (.pak) in FTP_DirBin to install at the next connection; empty for none",
       "Firmware"),
    _k("BIN_Checksum", _C, t.HexKey(32, "SHA-256 of the package"), "",
       "SHA-256 of BIN_FileName (64 hex digits); required with BIN_FileName", "Firmware"),
    _k("BIN_PublicKey", _C, t.HexKey(32, "Ed25519 public key"), "",
       "Ed25519 public key (64 hex digits) that firmware packages must be signed with; "
       "empty: every package is refused", "Firmware"),
    _k("BIN_HealthTimeout", _C, t.Int(30, 3600), 180,
       "Seconds a new release gets, after its restart, for every service to report "
       "operational with its version; otherwise it is rolled back", "Firmware"),
    _k("Web_Listen", _C, t.Listen(), "127.0.0.1:8080",
       "Address and port of the installer's web page", "Web page"),
    _k("Web_User", _C, t.Text(empty=False, max_len=32, pattern=r"[^:\s]+",
                              doc="a user name without spaces or ':'"),
       "userhigh", "User name of the installer's web page", "Web page"),
    _k("Web_PasswordHash", _C, t.PasswordHash(), DEFAULT_PASSWORD_HASH,
       "Hash of the web page password (default: the hash of 'high'); "
       "make one with ticgw.config.hash_password", "Web page", secret=True),
    _k("Bus_Xsub", _C, t.Endpoint(), "",
       "Endpoint of the event broker's XSUB side (publishers); empty: ipc://RUN/bus-xsub",
       "Bus"),
    _k("Bus_Xpub", _C, t.Endpoint(), "",
       "Endpoint of the event broker's XPUB side (subscribers); empty: ipc://RUN/bus-xpub",
       "Bus"),
    # one command endpoint per service of the registry: Bus_Acquisition, Bus_Uplink...
    *(_k(spec.config_key, _C, t.Endpoint(), "",
         "Command endpoint of the %s service; empty: ipc://RUN/%s.cmd" % (spec.name, spec.name),
         "Bus") for spec in registry.SERVICES),
    _k("Bus_CurvePublicKey", _C, t.Z85Key(), "",
       "ZeroMQ CURVE public key (Z85, 40 characters); required when a Bus_* endpoint is tcp://",
       "Bus"),
    _k("Bus_CurveSecretKey", _C, t.Z85Key(), "",
       "ZeroMQ CURVE secret key (Z85, 40 characters); required when a Bus_* endpoint is tcp://",
       "Bus", secret=True),
    # ---- <site>_daq.ini -------------------------------------------------------------------------
    _k("DAQ_Period", _D, t.Int(0, 59, "min"), 10,
       "Minutes between two samples of the meters' variables; 0: use DAQ_PeriodSec",
       "Acquisition"),
    _k("DAQ_PeriodSec", _D, t.Int(1, 3600, "s"), 60,
       "Seconds between two samples, used only when DAQ_Period=0", "Acquisition"),
    _k("DAQ_HeaderOption", _D, t.Bool(), 0,
       "1: start each meter section of the data files with the nbVariable header line",
       "Acquisition"),
    _k("TIC_LostDelay", _D, t.Int(5, 3600, "s"), 60,
       "Seconds without a valid frame before a meter is declared lost", "Acquisition"),
    _k("Spool_MaxMB", _D, t.Int(1, 100000, "MB"), 50,
       "Disk budget of the spool in MB; beyond it the oldest data is dropped, with an alarm",
       "Acquisition"),
    _k("TIC_Port", _D, t.SerialPort(), "",
       "Serial port of TIC input n (device path or pyserial URL); empty: input unused",
       "TIC input", count=N_INPUTS, attr="port"),
    _k("TIC_Mode", _D, t.Choice("auto", "historic", "standard"), "auto",
       "TIC mode of input n: historic (1200 baud), standard (9600 baud) or auto (detected)",
       "TIC input", count=N_INPUTS, attr="mode"),
    _k("TIC_Baud", _D, t.Baud(), "auto",
       "Line speed of input n: auto (from the mode or detection) or a fixed rate",
       "TIC input", count=N_INPUTS, attr="baud"),
    _k("TIC_Serial", _D, t.Text(max_len=20, pattern=_SERIAL, doc="letters and digits"), "",
       "Serial number (ADCO/ADSC) of the meter on input n, as found by detection",
       "TIC input", count=N_INPUTS, attr="serial"),
    _k("TIC_FileDefName", _D, t.FileName(), "",
       "Definition file of the meter on input n (e.g. WEBDYN_TIC_CBEMM-ICC.ini); "
       "empty: chosen by detection", "TIC input", count=N_INPUTS, attr="def_file"),
    # ---- <site>_var.ini -------------------------------------------------------------------------
    _k("Connection_Period", _V, t.Int(0, 23, "h"), 0,
       "Hours between connections, at Connection_Minute past the hour; "
       "0: connect at the fixed times below", "Schedule"),
    _k("Connection_PeriodMin", _V, t.Int(0, 1440, "min"), 0,
       "Minutes between connections; above 0 it replaces the hourly schedule "
       "(demonstrations and tests)", "Schedule"),
    _k("Connection_Hour", _V, t.Int(0, 23), 1, "Hour of the first fixed daily connection",
       "Schedule"),
    _k("Connection_Minute", _V, t.Int(0, 59), 0, "Minute of the first fixed daily connection",
       "Schedule"),
    *(k for i in range(1, 5) for k in (
        _k("Connection_Hour%d" % i, _V, t.Int(0, 23), 0,
           "Hour of further fixed daily connection %d" % i, "Schedule"),
        _k("Connection_Minute%d" % i, _V, t.Int(0, 59), 0,
           "Minute of further fixed daily connection %d" % i, "Schedule"))),
    _k("Connection_OnDataAcquisition", _V, t.Bool(), 0,
       "1: also connect after every sample to upload the new data", "Schedule"),
    _k("Connection_Timeout", _V, t.Int(1, 1440, "min"), 30,
       "Minutes a connection may last at most; beyond, it is cut short (the journal says so) "
       "and what is left waits for the next one", "Schedule"),
    _k("Connection_CheckConfigPeriod", _V, t.Int(0, 365, "days"), 0,
       "Days between checks of the server's configuration and definition files; "
       "0: at every connection", "Schedule"),
    _k("ALM_Delay", _V, t.Bool(), 0,
       "0: send alarms at once (a connection per alarm); 1: send them with the next sample",
       "Alarms"),
)


def _expand(declared: tuple[Key, ...]) -> tuple[Key, ...]:
    """Arrays expanded per input, grouped by input: TIC_Port[1], TIC_Mode[1], ..., TIC_Port[2]."""
    out: list[Key] = []
    pending: list[Key] = []

    def flush():
        for i in range(1, N_INPUTS + 1):
            for k in pending:
                out.append(Key("%s[%d]" % (k.name, i), k.kind, k.type, k.default, k.help,
                               "%s %d" % (k.group, i), k.secret, 0, k.attr, i))
        pending.clear()

    for k in declared:
        if k.count:
            pending.append(k)
            continue
        flush()
        out.append(k if k.attr else Key(k.name, k.kind, k.type, k.default, k.help, k.group,
                                         k.secret, 0, snake(k.name)))
    flush()
    return tuple(out)


#: Every concrete key, in file order.
KEYS: tuple[Key, ...] = _expand(DECLARED)
BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}
#: TicInput fields carried by array keys, in declaration order.
INPUT_ATTRS: tuple[str, ...] = tuple(k.attr for k in DECLARED if k.count)


def keys_of(kind: str) -> tuple[Key, ...]:
    return tuple(k for k in KEYS if k.kind == kind)
