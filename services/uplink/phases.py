"""The work of each connection phase (DESIGN 5), run in the uplink's worker thread.

Each phase method journals the manual's messages verbatim (section 10.3.2) and returns the
machine's trigger: "done" (work done, or nothing to do), "failed" (its error is journaled; the
next phase still runs) or "abort" (WAN or FTP unreachable: the connection ends).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import tempfile
from pathlib import Path

from bus.errors import BusTimeout
from ticgw import files
from ticgw.files import row_time, sha256_file, write_atomic
from ticgw.release import record as release_record
from ticgw.stamps import StampBook

from . import commands, sync
from .ftp import (FtpConnectError, FtpDirectoryMissing, FtpError, FtpNoSpace, FtpSession,
                  FtpSettings, FtpTransferError)
from .inbox import CommandInbox, Taken
from .reasons import reason
from .webservices import gateway_mac

log = logging.getLogger("uplink.phases")

CONFIG_KINDS = ("config", "daq", "var")

#: Largest file taken from the server, per directory: anything bigger is refused with its size
#: (a command or configuration file is a few hundred bytes; a package, a few megabytes).
MAX_BYTES = {"CMD": 64 * 1024, "CONFIG": 256 * 1024, "DEF": 256 * 1024,
             "BIN": 256 * 1024 * 1024}

#: Seconds a call to another service may take inside a connection; a peer that missed it is
#: not asked again in that connection (a dead acquisition must not hold the task lock).
PEER_TIMEOUT = 5.0
SEAL_TIMEOUT = 15.0
#: Seconds the modem may take to bring its data link up (registration, dial).
MODEM_CONNECT_TIMEOUT = 300.0


class PeerUnavailable(Exception):
    """Another service did not answer in time during this connection."""

    def __str__(self) -> str:
        return "%s: %s" % (self.args[0], self.args[1])


class TooLarge(Exception):
    """A server file over MAX_BYTES."""

    def __init__(self, name: str, size: int, limit: int):
        super().__init__("Fichier %s refusé : %d octets, au plus %d" % (name, size, limit))


class Connection:
    """One connection's context: what the phases share. Built on the loop, used in the worker."""

    def __init__(self, *, settings, store, data_dir: Path, journal, clock, bus_call,
                 ntp_sync, webservices=None, reason: str = "", install: bool = False,
                 ftp_factory=None, check_config: bool = True, mac: str = "",
                 send_version: bool = False):
        self.settings = settings
        self.store = store
        self.data_dir = Path(data_dir)
        self.outbox = self.data_dir / "outbox"
        self.journal = journal
        self.clock = clock
        self.bus_call = bus_call
        self.ntp_sync = ntp_sync
        self.ws = webservices
        self.reason = reason
        self.install = install           # install button: deposit the parameters file too
        self.check_config = check_config
        self.mac = mac
        self.send_version = send_version  # confirm.php VERSION, first connection after a start
        self.ftp_factory = ftp_factory or (lambda s: FtpSession(FtpSettings.from_settings(s)))
        self.ftp: FtpSession | None = None
        self.effects = commands.Effects()
        self.restart_needed = False
        #: the package the firmware phase fetched and checked, for the update service
        self.firmware_package: dict | None = None
        self.failed = False              # cut short (fault, deadline)
        self.closed = False              # `closing` has run
        self.stats = {"uploaded": 0, "bytes": 0, "failed": 0, "ftp_commands": 0,
                      "round_trips": 0}
        self.site = settings.site
        self.state_dir = self.data_dir / "state"
        self.stamps = StampBook(self.state_dir)
        self.inbox = CommandInbox(self.state_dir)
        self.unavailable: set[str] = set()   # services that missed a call in this connection
        self._snapshot: dict = {}            # (kind, name) -> RemoteFile | None, from the login
        self.modem_up = False                # the modem's data link was brought up for us
        self.modem_asked = False             # the link was asked for (a late one is hung up)

    # --- helpers ------------------------------------------------------------------------------

    def _ftp(self) -> FtpSession:
        """The FTP session, opened at the first phase that needs it."""
        if self.ftp is None:
            try:
                session = self.ftp_factory(self.settings)
                self._opening = session              # abort() reaches it while it logs in
                known = self._known_server().get(self._server_key()) or {}
                session.remember(known.get("dirs", ()), known.get("features"))
                session.prefetch(self._snapshot_pairs())
                session.connect()
                self._snapshot = self._take_snapshot(session)
            except FtpConnectError as e:
                log.warning("FTP connection failed: %s", e)
                self._error("Erreur de connexion FTP", e)
                raise
            self.ftp = session
        return self.ftp

    def _snapshot_pairs(self) -> list[tuple[str, str]]:
        pairs = [("CMD", files.command_name(self.site))]
        if self.check_config:
            pairs += [("CONFIG", name) for name in self._config_files()]
            pairs += [("DEF", name) for name in self._definition_files()]
        return pairs

    def _take_snapshot(self, session: FtpSession) -> dict:
        """At login, in the login's round trip (or one more) where the server allows: the
        command file, the configuration and definition files, the ones the phases will look at
        (3 round trips saved on a daily connection). A phase uses an entry once, for a
        directory known to exist (else it looks itself, and reports a missing directory)."""
        if session.prefetched is not None:
            return dict(session.prefetched)
        if not session.can_stat_many:
            return {}
        try:
            found = session.stat_files(self._snapshot_pairs())
        except FtpError as e:
            log.info("no snapshot of the server's files: %s", e)
            return {}
        return dict(found or {})

    def _from_snapshot(self, kind: str, names: list[str]) -> dict | None:
        """The snapshot's entries of ``names``, if it has them all; the directory is looked at
        first when no session saw it yet (FtpDirectoryMissing if it is not there)."""
        ftp = self.ftp
        if ftp is None or not all((kind, n) in self._snapshot for n in names):
            return None
        if kind not in ftp.known_kinds:
            ftp.check_dir(kind)
        return {n: self._snapshot.pop((kind, n)) for n in names}

    def _error(self, row: str, error: BaseException) -> None:
        """The manual's error row, verbatim, then the reason (issue 8): what to fix."""
        self.journal(row)
        if isinstance(error, TooLarge):
            self.journal(str(error))
        elif isinstance(error, PeerUnavailable):
            self.journal("Service %s indisponible : %s" % (error.args[0], error.args[1]))
        else:
            self.journal(reason(error, tls=bool(self.settings.ftp_tls)))

    def call_peer(self, service: str, method: str, timeout: float = PEER_TIMEOUT, **params):
        """A call to another service with a short deadline; once a service missed one, the
        rest of the connection does not wait for it again."""
        if service in self.unavailable:
            raise PeerUnavailable(service, "ne répond pas")
        try:
            return self.bus_call(service, method, timeout=timeout, **params)
        except (BusTimeout, TimeoutError) as e:
            self.unavailable.add(service)
            raise PeerUnavailable(service, "ne répond pas en %.0f s" % timeout) from e

    def _server_key(self) -> str:
        s = self.settings
        return "%s@%s:%s" % (s.ftp_login, s.ftp_server, s.ftp_port)

    def _known_server(self) -> dict:
        """``state/ftp_servers.json``: per server, the directories seen there and its FEAT,
        for the next session."""
        try:
            data = json.loads((self.state_dir / "ftp_servers.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_known_server(self, session: FtpSession) -> None:
        known = self._known_server()
        entry = {"dirs": sorted(session.known_paths), "features": sorted(session.features)}
        if known.get(self._server_key()) != entry:
            known[self._server_key()] = entry
            write_atomic(self.state_dir / "ftp_servers.json", json.dumps(known).encode())

    def close(self) -> None:
        if self.ftp is not None:
            try:
                self._save_known_server(self.ftp)
            except OSError as e:
                log.warning("what was learnt of the FTP server is not remembered: %s", e)
            try:
                self.ftp.close()                 # QUIT: counted in the stats read below
            except Exception:
                pass
            ftp_stats = self.ftp.stats
            self.stats["ftp_commands"] += ftp_stats.get("commands", 0)
            self.stats["round_trips"] += ftp_stats.get("round_trips", 0)
            self.ftp = None

    _opening = None

    def abort(self) -> None:
        """From another thread: cut the FTP session so that a phase blocked on it returns."""
        ftp = self.ftp or self._opening
        if ftp is not None:
            ftp.abort()

    def _retry_journal(self, attempt, tries, error) -> None:
        self.journal("Erreur de transfert FTP : %d sur %d" % (attempt, tries))

    def _deposit(self, kind: str, path: Path, ok_msg: str, err_msg: str) -> bool:
        """Upload one outbox file (two steps, size checked, 3 tries); delete it once delivered."""
        try:
            self._ftp().upload(kind, path, tries=3, on_retry=self._retry_journal)
        except FtpNoSpace as e:
            self._error(err_msg % path.name, e)
            raise
        except FtpConnectError as e:
            # The server went away mid-connection and does not take us back: abort.
            log.warning("%s: %s", path.name, e)
            self._error("Erreur de connexion FTP", e)
            raise
        except (FtpDirectoryMissing, FtpTransferError) as e:
            log.warning("%s: %s", path.name, e)
            self._error(err_msg % path.name, e)
            self.stats["failed"] += 1
            return False
        self.stats["uploaded"] += 1
        self.stats["bytes"] += path.stat().st_size
        self.journal(ok_msg % path.name)
        path.unlink()
        return True

    def _deposit_all(self, kind: str, files: list[Path], ok_msg: str, err_msg: str) -> str:
        failed = False
        for p in files:
            try:
                if not self._deposit(kind, p, ok_msg, err_msg):
                    failed = True
            except FtpNoSpace:
                return "failed"  # the server is full: the rest waits for the next connection
        return "failed" if failed else "done"

    def _confirm(self, action: str, comp: str = "") -> None:
        """Web Services notification (confirm.php), when enabled."""
        if self.ws is None:
            return
        try:
            self.ws.confirm(self.site, action, comp)
        except Exception as e:
            log.warning("Web Services %s: %s", action, e)
            self.journal("Erreur Web services")

    def _files(self, kind: str) -> list[Path]:
        d = self.outbox / kind
        if not d.is_dir():
            return []
        found = [p for p in d.iterdir() if p.is_file() and not files.is_temp_name(p.name)]
        return sorted(found, key=files.time_order)

    # --- the phases ---------------------------------------------------------------------------

    def requesting(self) -> str:
        self.journal("Demande de connexion...")
        self.journal("Arrêt de l'acquisition de données...")
        try:
            self.call_peer("acquisition", "pause")
            self.call_peer("acquisition", "seal", timeout=SEAL_TIMEOUT)
            if self.install:
                self.call_peer("acquisition", "params")
        except Exception as e:
            # What is already sealed still goes; the rest waits for the next connection.
            log.warning("acquisition did not seal its records: %s", e)
        return "done"

    def wan(self) -> str:
        if self.settings.connection_mode == "modem":
            self.journal("Connexion modem GPRS...")
            self.modem_asked = True          # hung up at the end whatever the answer
            try:
                link = self.bus_call("modem", "connect", timeout=MODEM_CONNECT_TIMEOUT) or {}
            except Exception as e:
                log.warning("modem: %s", e)
                self.journal("Erreur de connexion WAN")
                self.journal(_modem_refusal(e))
                return "abort"
            self.modem_up = True
            self.journal("Connexion établie")
            self.journal(modem_detail(link))
            return "done"
        self.journal("Connexion établie")
        return "done"

    def ntp(self) -> str:
        servers = [s for s in (self.settings.ntp_server1, self.settings.ntp_server2) if s]
        if not servers:
            return "done"
        self.journal("Synchronisation NTP...")
        try:
            result = self.ntp_sync(servers)
        except Exception as e:
            log.warning("NTP: %s", e)
            self.journal("Erreur de synchronisation NTP")
            return "failed"
        self.clock.set_offset(result.offset)
        log.info("NTP %s: offset %+.3f s", result.server, result.offset)
        self.journal("Synchronisation NTP OK")
        return "done"

    def site_id(self) -> str:
        if self.send_version:
            # The first connection after a (re)start tells the server the software version.
            from ticgw import __version__
            self._confirm("VERSION", "ticgw %s" % __version__)
        if not (self.settings.site_id_auto and self.settings.web_service_enable and self.ws):
            return "done"
        self.journal("Récupération ID site...")
        try:
            site = self.ws.initialisation(self.mac or gateway_mac())
        except Exception as e:
            log.warning("site ID: %s", e)
            self.journal("Erreur de récupération de l'ID site")
            return "failed"
        if site != self.settings.site_id:
            try:
                self.store.update({"Site_Id": site}, by="server")
            except Exception as e:  # e.g. longer than Site_Id allows
                log.warning("site ID %r refused: %s", site, e)
                self.journal("Erreur de récupération de l'ID site")
                return "failed"
            self.settings = self.store.settings
            self.site = self.settings.site
            self.restart_needed = True
        self.journal("ID Site %s" % site)
        return "done"

    def alarms(self) -> str:
        self.journal("Gestion des alarmes ...")
        self._ftp()
        files = self._files("ALARM")
        if not files:
            self.journal("Aucune alarme en cours...")
            return "done"
        outcome = self._deposit_all("ALARM", files, "Dépôt du fichier d'alarme %s",
                                    "Erreur de dépôt du fichier d'alarme %s")
        self._confirm("UPLOADALARM")
        return outcome

    def commands(self) -> str:
        """The command file (DESIGN 6): kept on local disk before its server copy is deleted,
        run line by line with its progress recorded, acknowledged once (inbox.py)."""
        self.journal("Gestion des fichiers de commandes ...")
        ftp = self._ftp()
        name = files.command_name(self.site)
        outcome = "done"
        ran = False
        taken = self.inbox.pending()
        if taken is not None:                # a crash interrupted it: finish it first
            log.warning("finishing the command file %s a connection left", taken.name)
            outcome = self._run_taken(taken)
            ran = True
        try:
            remote = self._command_file(ftp, name)
        except (FtpError, TooLarge) as e:
            log.warning("command file: %s", e)
            self._error("Erreur de récupération du fichier %s" % name, e)
            return "failed"
        if remote is None:
            if not ran:
                self.journal("Pas de fichier de commandes disponible...")
            return _worse(outcome, self._deposit_acks())
        size, mtime, content = remote
        ack = files.ack_name(self.site, self.stamps.take("ack", self.clock.now()))
        taken = self.inbox.take(name, content, (size, mtime), ack)
        self.journal("Récupération du fichier %s" % name)
        self._delete_command_file(ftp, name, taken)
        return _worse(outcome, self._run_taken(taken))

    def _command_file(self, ftp: FtpSession, name: str):
        """(size, mtime, content) of a new command file on the server; None if there is none.
        The copy a refused delete left there, already run, is deleted again, not run again."""
        seen = self._from_snapshot("CMD", [name])
        if seen is not None:
            f = seen[name]
            facts = None if f is None else (f.size, f.mtime)
        else:
            facts = ftp.stat("CMD", name, with_time=False)
            if facts is not None and not ftp.exact_times:
                facts = (facts[0], ftp.mdtm("CMD", name))
        if facts is None:
            return None
        size, mtime = facts
        if size > MAX_BYTES["CMD"]:
            raise TooLarge(name, size, MAX_BYTES["CMD"])
        last = self.inbox.last()
        same = (last is not None and last.get("name") == name and not last.get("deleted")
                and mtime is not None and list(last.get("remote", ())) == [size, mtime])
        if not same and last is not None and mtime is None and last.get("name") == name \
                and not last.get("deleted") and list(last.get("remote", ()))[:1] == [size]:
            # a server without MLST or MDTM: the same size and content is the same file
            content = self._fetch("CMD", name, size)
            if hashlib.sha256(content).hexdigest() == last.get("sha"):
                same = True
            else:
                return size, mtime, content
        if same:
            log.warning("%s is the command file already run (its delete failed): deleting it",
                        name)
            self._delete_command_file(ftp, name)
            return None
        return size, mtime, self._fetch("CMD", name, size)

    def _delete_command_file(self, ftp: FtpSession, name: str, taken: Taken | None = None
                             ) -> None:
        try:
            ftp.delete("CMD", name, missing_ok=True)
        except FtpError as e:
            # Its commands still run; the next connection knows the file and deletes it.
            log.warning("cannot delete %s on the server: %s", name, e)
            self._error("Erreur de suppression du fichier %s" % name, e)
            return
        self.inbox.deleted(taken)

    def _run_taken(self, taken: Taken) -> str:
        """Run (or resume) a command file kept in the inbox, write its ACK, deposit the ACKs."""
        self._confirm("CMD", taken.name)
        now_text = row_time(self.clock.now(), bool(self.settings.ftp_euro_date_format))
        outcome = commands.run(
            taken.content.decode("utf-8", "replace"), now_text, _Handlers(self),
            done=taken.acks, effects=taken.effects,
            on_line=lambda acks, effects: self.inbox.progress(taken, acks, effects))
        self.effects = commands.Effects.from_dict(
            {k: v or getattr(self.effects, k) for k, v in outcome.effects.as_dict().items()})
        if outcome.effects.config_changed:
            self.restart_needed = True
            self.settings = self.store.settings
        self.inbox.finish(taken, self.outbox / "CMD" / taken.ack_name,
                          files.ack_file(outcome.acks))
        ok = self._deposit_acks() == "done"
        return "done" if ok and not outcome.errors else "failed"

    def _deposit_acks(self) -> str:
        """Deposit the ACK files in the outbox: this connection's and any a previous one left."""
        return self._deposit_all("CMD", self._files("CMD"), "Dépôt du fichier %s",
                                 "Erreur de dépôt du fichier %s")

    def parameters(self) -> str:
        self.journal("Gestion des fichiers de paramètres ...")
        # The manual sends the parameters file to the data directory (its error message says
        # to check "le nom du répertoire des fichiers de données").
        return self._deposit_all("DATA", self._files("PARAM"),
                                 "Dépôt du fichier de paramètres %s",
                                 "Erreur de dépôt du fichier de paramètres %s")

    def data(self) -> str:
        self.journal("Gestion des fichiers de données ...")
        files = self._files("DATA")
        outcome = self._deposit_all("DATA", files, "Dépôt du fichier de données %s",
                                    "Erreur de dépôt du fichier de données %s")
        if files:
            self._confirm("UPLOADDATA")
        return outcome

    def _config_files(self) -> list[str]:
        return [self.settings.file_names()[kind] for kind in CONFIG_KINDS]

    def _definition_files(self) -> list[str]:
        """The definitions here, and those the daq file names that the server may have."""
        def_dir = self.data_dir / "def"
        local = {p.name for p in def_dir.glob("*.ini")} if def_dir.is_dir() else set()
        wanted = {t.def_file for t in self.settings.inputs if t.used and t.def_file}
        return sorted(local | wanted)

    def config(self) -> str:
        files = [(self.settings.file_names()[kind], self.store.file_path(kind))
                 for kind in CONFIG_KINDS]
        kind_of = {name: kind for (name, _), kind in zip(files, CONFIG_KINDS)}

        def accept(name: str, content: bytes) -> None:
            kind = kind_of[name]
            problems = self.store.validate_text(kind, content.decode("latin-1"))
            if problems:
                for p in problems:
                    log.error("rejected %s from the server: %s", name, p)
                raise ValueError(str(problems[0]))
            self.store.apply_text(kind, content, by="server")
            self.settings = self.store.settings
            self._confirm("CONFIGGLOBAL", name + ";")

        outcome, uploaded = self._sync_dir("CONFIG", "config", "configuration", files, accept)
        if uploaded:
            self._confirm("UPLOADGLOBAL", ";".join(uploaded) + ";")
        return outcome

    def definitions(self) -> str:
        def_dir = self.data_dir / "def"
        # Definitions named in the daq file but not here yet are fetched when the server has them.
        files = [(name, def_dir / name) for name in self._definition_files()]

        def accept(name: str, content: bytes) -> None:
            # The TIC catalogue is loaded only when the server has a new definition file.
            from tic.definitions import parse
            parse(name, content.decode("utf-8", "replace"))
            def_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(def_dir / name, content)
            self._confirm("CONFIGDEF", name)

        outcome, _ = self._sync_dir("DEF", "def", "définition", files, accept)
        return outcome

    def _sync_dir(self, ftp_kind: str, mark_kind: str, label: str,
                  files: list[tuple[str, Path]], accept) -> tuple[str, list[str]]:
        """Sync local files with one server directory (DESIGN 7, sync.py).

        `accept(name, content)` validates and applies a downloaded file; it raises (ValueError,
        DefinitionError...) with the reason to reject it, and then nothing local changes.
        `label` completes the manual's messages ("configuration" or "définition").
        Returns the outcome and the names uploaded.
        """
        phase = "configuration" if ftp_kind == "CONFIG" else "définition"
        self.journal("Gestion des fichiers de %s%s" % (
            phase, " ..." if ftp_kind == "CONFIG" else "..."))
        if not self.check_config:
            self.journal("Pas de changement de fichiers de %s." % label)
            return "done", []
        ftp = self._ftp()
        marks = sync.Marks(self.state_dir)
        try:
            remote = self._remote_files(ftp, ftp_kind, [name for name, _ in files])
        except FtpError as e:
            log.warning("%s dir: %s", ftp_kind, e)
            self._error("Erreur de connexion FTP", e)
            return "failed", []
        changed = failed = False
        uploaded = []
        for name, path in files:
            local = path.read_bytes() if path.exists() else None
            if local is None and name not in remote:
                continue
            mark = marks.get(mark_kind, name)
            action = sync.decide(name, local, remote.get(name), mark)
            if action == sync.VERIFY:
                action = self._verify(ftp_kind, name, remote[name], mark, marks, mark_kind,
                                      local, label, accept)
            if action == sync.NOTHING:
                continue
            changed = True
            if action == sync.UPLOAD:
                ok = self._upload_synced(ftp_kind, path, name, marks, mark_kind,
                                         "Dépôt du fichier de %s %%s" % label,
                                         "Erreur de dépôt du fichier de %s %%s" % label)
                if ok:
                    uploaded.append(name)
            elif action == sync.DOWNLOAD:
                ok = self._download_synced(ftp_kind, name, remote[name], marks, mark_kind,
                                           label, accept)
            else:                              # VERIFY gave the changed content already
                ok = action is True
            failed = failed or not ok
        if not changed:
            self.journal("Pas de changement de fichiers de %s." % label)
        return ("failed" if failed else "done"), uploaded

    def _remote_files(self, ftp: FtpSession, kind: str, names: list[str]) -> dict:
        """What the server has of ``names``: from the snapshot taken at login, else in one
        round trip when it can (pipelined MLST, or SIZE and MDTM, exact times), else from a
        listing of the directory."""
        found = self._from_snapshot(kind, names)
        if found is None and ftp.can_stat_many and names:
            found = ftp.stat_many(kind, names)
        if found is None:
            found = {f.name: f for f in ftp.listdir(kind)}
        return {n: sync.Remote(f.size, f.mtime, f.precision) for n, f in found.items() if f}

    def _verify(self, kind, name, listed, mark, marks, mark_kind, local, label, accept):
        """A listing to the minute cannot tell whether the file changed since the mark: ask MDTM
        where the mark knows the exact time, else fetch the file and compare its hash (sync.py).
        Returns the action left to do (NOTHING, UPLOAD, DOWNLOAD), or the download's outcome
        (True/False) when the content fetched here turned out to be new."""
        now = self.clock.now()
        exact = None
        try:
            if mark.get("mtime") is not None:
                exact = self._ftp().mdtm(kind, name)
        except FtpError as e:
            log.info("%s: MDTM: %s (comparing the content instead)", name, e)
        if exact is not None:
            if exact != mark["mtime"]:
                return self._download_synced(kind, name, listed, marks, mark_kind, label, accept,
                                             exact=exact)
            content_sha = mark.get("sha")
        else:
            content = self._fetch_synced(kind, name, listed.size, label)
            if content is None:
                return False
            if sync.sha(content) != mark.get("sha"):
                return self._apply_download(name, content, listed, marks, mark_kind, label,
                                            accept)
            content_sha = sync.sha(content)
        # Unchanged: the mark learns the listing's value and when this look was.
        marks.set_seen(mark_kind, name, listed, exact, now, content_sha)
        if local is not None and sync.sha(local) != content_sha:
            return sync.UPLOAD
        return sync.NOTHING

    def _fetch(self, kind: str, name: str, size: int) -> bytes:
        limit = MAX_BYTES[kind]
        if size > limit:
            raise TooLarge(name, size, limit)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            self._ftp().download(kind, name, local, on_retry=self._retry_journal,
                                 max_bytes=limit)
            return local.read_bytes()

    def _fetch_synced(self, kind: str, name: str, size: int, label: str) -> bytes | None:
        """A configuration or definition file's content; None (journaled) if it cannot be had."""
        try:
            return self._fetch(kind, name, size)
        except (FtpError, TooLarge) as e:
            log.warning("%s: %s", name, e)
            self._error("Erreur de récupération du fichier de %s %s" % (label, name), e)
            return None

    def _upload_synced(self, kind, local_path, name, marks, mark_kind, ok_msg, err_msg) -> bool:
        ftp = self._ftp()
        try:
            content = local_path.read_bytes()
            ftp.upload(kind, local_path, remote_name=name, tries=3, on_retry=self._retry_journal)
            st = ftp.stat(kind, name)
        except FtpError as e:
            log.warning("%s: %s", name, e)
            self._error(err_msg % name, e)
            return False
        if st is not None:
            marks.set(mark_kind, name, content, size=st[0], mtime=st[1],
                      seen=self.clock.now())
        self.stats["uploaded"] += 1
        self.stats["bytes"] += len(content)
        self.journal(ok_msg % name)
        return True

    def _download_synced(self, kind, name, remote, marks, mark_kind, label, accept,
                         exact: float | None = None) -> bool:
        """Fetch a changed server file; the server wins once `accept` took it."""
        content = self._fetch_synced(kind, name, remote.size, label)
        if content is None:
            return False
        return self._apply_download(name, content, remote, marks, mark_kind, label, accept,
                                    exact)

    def _apply_download(self, name, content, remote, marks, mark_kind, label, accept,
                        exact: float | None = None) -> bool:
        error_msg = "Erreur de récupération du fichier de %s %s" % (label, name)
        try:
            accept(name, content)
        except Exception as e:
            log.error("rejected %s from the server: %s", name, e)
            self.journal(error_msg)
            self.journal("Fichier %s refusé : %s" % (name, e))
            return False
        if remote.precision <= 1:
            exact = remote.mtime
        marks.set(mark_kind, name, content, size=remote.size, mtime=exact, listed=remote,
                  seen=self.clock.now())
        self.journal("Récupération du fichier de %s %s" % (label, name))
        self.restart_needed = True
        return True

    def logs(self) -> str:
        self.journal("Gestion des fichiers de logs ...")
        self._seal_journal()
        outcome = "done"
        for p in self._files("LOG"):
            if p.name.endswith("_debug.log.gz"):  # left by a previous connection
                ok = self._deposit("LOG", p, "Dépôt du fichier de debug %s",
                                   "Erreur de dépôt du fichier de debug %s")
            else:
                ok = self._deposit("LOG", p, "Dépôt du fichier journal de bord %s",
                                   "Erreur de dépôt du fichier journal de bord %s")
            if not ok:
                outcome = "failed"
        if self.effects.debug_log:
            name = files.debug_log_name(self.site, self.stamps.take("debug", self.clock.now()))
            path = self.outbox / "LOG" / name
            write_atomic(path, gzip.compress(_debug_snapshot(self.data_dir), mtime=0))
            if not self._deposit("LOG", path, "Dépôt du fichier de debug %s",
                                 "Erreur de dépôt du fichier de debug %s"):
                outcome = "failed"
        return outcome

    def _seal_journal(self) -> None:
        """The rows written since the last upload into a LOG file of the outbox, once.

        ``state/log_pending.json`` names the file and the journal offset it covers before the
        file is written; the journal's upload mark then records that name. Killed anywhere, the
        next connection knows whether the rows are in a file (mark them) or not (write them):
        never in two files, never in none."""
        pending = self.state_dir / "log_pending.json"
        self._finish_log_pending(pending)
        data, offset = self.journal.unsent()
        if not data:
            return
        name = files.log_name(self.site, self.stamps.take("log", self.clock.now()))
        path = self.outbox / "LOG" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(pending, json.dumps({"name": name, "offset": offset}).encode())
        write_atomic(path, gzip.compress(data, mtime=0))
        # Entries written from here on go in the next connection's log.
        self.journal.mark_sent(offset, note=name)
        pending.unlink()

    def _finish_log_pending(self, pending: Path) -> None:
        try:
            left = json.loads(pending.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            left = {}
        name = left.get("name")
        if name and self.journal.mark_note() != name and (self.outbox / "LOG" / name).exists():
            self.journal.mark_sent(int(left["offset"]), note=name)
        pending.unlink()

    def firmware(self) -> str:
        """*Gestion du firmware...*: the package ``BIN_FileName`` names is fetched from
        ``FTP_DirBin`` and checked against ``BIN_Checksum``; the service hands it to the update
        service once the connection is over (it installs last, and restarts the gateway). A
        package the update service has already taken (installed, rolled back, refused, or on
        its way) is not fetched again; its outcome is journaled when it is known, so it goes
        to the server in the next connection's log."""
        name, checksum = self.settings.bin_file_name, self.settings.bin_checksum.lower()
        if not name:
            return "done"
        self.journal("Gestion du firmware...")
        try:
            record = (self.call_peer("update", "status") or {}).get("record") or {}
        except Exception as e:
            log.warning("firmware %s: the update service: %s", name, e)
            self.journal("Erreur de mise à jour : le service de mise à jour ne répond pas")
            return "failed"
        if record.get("sha256") == checksum and record.get("state") not in (None, "idle") \
                and not release_record.retryable(record):
            log.info("firmware %s: already taken by the update service (%s)", name,
                     record.get("state"))
            return "done"
        dest = self.data_dir / "firmware" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not (dest.exists() and sha256_file(dest) == checksum):
            try:
                self._ftp().download("BIN", name, dest, on_retry=self._retry_journal,
                                     max_bytes=MAX_BYTES["BIN"])
            except FtpError as e:
                log.warning("firmware %s: %s", name, e)
                self._error("Erreur de récupération du fichier %s" % name, e)
                return "failed"
            digest = sha256_file(dest)
            if digest != checksum:
                dest.unlink()
                log.error("firmware %s: checksum %s, expected %s", name, digest, checksum)
                self.journal("Erreur de somme de contrôle du firmware %s" % name)
                return "failed"
            self._confirm("CONFIGBIN", name)
        self.firmware_package = {"path": str(dest), "sha256": checksum}
        self.journal("Firmware %s vérifié : installation en fin de connexion" % name)
        return "done"

    def closing(self, failure: str | None = None) -> None:
        """Close the session, say so, resume the acquisition; ``failure``: the row that says
        why the connection was cut short, first."""
        if failure:
            self.journal(failure)
        self.close()
        if self.settings.connection_mode == "modem" and self.modem_asked:
            self.journal("Déconnexion modem...")
            try:
                self.bus_call("modem", "disconnect", timeout=30.0)
            except Exception as e:
                log.warning("modem: %s", e)
        self.journal("Connexion terminée")
        self.journal("Reprise de l'acquisition de données...")
        try:
            self.call_peer("acquisition", "resume")
        except Exception as e:
            log.warning("acquisition did not resume: %s", e)


class _Handlers:
    """What command lines may do, for commands.run()."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def config_update(self, changes: dict) -> None:
        self.conn.store.update(changes, by="command")

    def params(self) -> None:
        try:
            self.conn.call_peer("acquisition", "params")
        except PeerUnavailable as e:
            raise RuntimeError("the acquisition service does not answer") from e


def _debug_snapshot(data_dir: Path) -> bytes:
    """The debug file: the state directory's small files, for support."""
    out = []
    for p in sorted((data_dir / "state").glob("*")):
        if p.is_file() and p.stat().st_size < 200_000:
            out.append("==> %s <==\n" % p.name)
            out.append(p.read_text(encoding="utf-8", errors="replace"))
    return "".join(out).encode("utf-8")


def _worse(a: str, b: str) -> str:
    return "failed" if "failed" in (a, b) else "done"


def _modem_refusal(error: BaseException) -> str:
    """The row after *Erreur de connexion WAN*: the modem's own reason."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    if isinstance(error, BusTimeout):
        return "Modem : pas de réponse du service modem"
    return text if text.startswith("Modem") or text.startswith("Type de modem") else (
        "Modem : %s" % text)


def modem_detail(link: dict) -> str:
    """The detail row after *Connexion établie* in Modem mode: signal and technology."""
    signal = link.get("signal")
    parts = ["signal %s" % ("inconnu" if signal is None else signal)]
    if link.get("rsrp") is not None:
        parts.append("RSRP %.0f dBm" % link["rsrp"])
    if link.get("sinr") is not None:
        parts.append("SINR %.0f dB" % link["sinr"])
    for key in ("technology", "operator"):
        if link.get(key):
            parts.append(str(link[key]))
    text = "Modem : " + ", ".join(parts)
    if link.get("warning"):
        text += " (attention : %s)" % link["warning"]
    return text
