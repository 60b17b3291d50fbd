"""The work of each connection phase (DESIGN 5), run in the uplink's worker thread.

Each phase method journals the manual's messages verbatim (section 10.3.2) and returns the
machine's trigger: "done" (work done, or nothing to do), "failed" (its error is journaled; the
next phase still runs) or "abort" (WAN or FTP unreachable: the connection ends).
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import tempfile
from pathlib import Path

from ticgw import files
from ticgw.files import name_stamp, row_time, write_atomic

from . import commands, sync
from .ftp import (FtpConnectError, FtpDirectoryMissing, FtpError, FtpNoSpace, FtpSession,
                  FtpSettings, FtpTransferError)
from .webservices import gateway_mac

log = logging.getLogger("uplink.phases")

CONFIG_KINDS = ("config", "daq", "var")


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
        self.failed = False              # cut short (fault, deadline)
        self.closed = False              # `closing` has run
        self.stats = {"uploaded": 0, "bytes": 0, "failed": 0, "ftp_commands": 0}
        self.site = settings.site

    # --- helpers ------------------------------------------------------------------------------

    def _ftp(self) -> FtpSession:
        """The FTP session, opened at the first phase that needs it."""
        if self.ftp is None:
            try:
                session = self.ftp_factory(self.settings)
                session.connect()
            except FtpConnectError as e:
                log.warning("FTP connection failed: %s", e)
                self.journal("Erreur de connexion FTP")
                raise
            self.ftp = session
        return self.ftp

    def close(self) -> None:
        if self.ftp is not None:
            self.stats["ftp_commands"] += self.ftp.stats.get("commands", 0)
            try:
                self.ftp.close()
            except Exception:
                pass
            self.ftp = None

    def abort(self) -> None:
        """From another thread: cut the FTP session so that a phase blocked on it returns."""
        ftp = self.ftp
        if ftp is not None:
            ftp.abort()

    def _retry_journal(self, attempt, tries, error) -> None:
        self.journal("Erreur de transfert FTP : %d sur %d" % (attempt, tries))

    def _deposit(self, kind: str, path: Path, ok_msg: str, err_msg: str) -> bool:
        """Upload one outbox file (two steps, size checked, 3 tries); delete it once delivered."""
        try:
            self._ftp().upload(kind, path, tries=3, on_retry=self._retry_journal)
        except FtpNoSpace:
            self.journal(err_msg % path.name)
            raise
        except FtpConnectError as e:
            # The server went away mid-connection and does not take us back: abort.
            log.warning("%s: %s", path.name, e)
            self.journal("Erreur de connexion FTP")
            raise
        except FtpDirectoryMissing as e:
            log.warning("%s: %s", path.name, e)
            self.journal(err_msg % path.name)
            self.journal("Répertoire %s absent du serveur FTP (paramètre %s)" % (e.path, e.setting))
            self.stats["failed"] += 1
            return False
        except FtpTransferError as e:
            log.warning("%s: %s", path.name, e)
            self.journal(err_msg % path.name)
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
            self.bus_call("acquisition", "pause")
            self.bus_call("acquisition", "seal", timeout=15.0)
            if self.install:
                self.bus_call("acquisition", "params")
        except Exception as e:
            # What is already sealed still goes; the rest waits for the next connection.
            log.warning("acquisition did not seal its records: %s", e)
        return "done"

    def wan(self) -> str:
        if self.settings.connection_mode == "modem":
            self.journal("Connexion modem GPRS...")
            try:
                self.bus_call("modem", "connect", timeout=120.0)
            except Exception as e:
                log.warning("modem: %s", e)
                self.journal("Erreur de connexion WAN")
                return "abort"
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
        self.journal("Gestion des fichiers de commandes ...")
        ftp = self._ftp()
        name = files.command_name(self.site)
        try:
            if ftp.stat("CMD", name) is None:
                self.journal("Pas de fichier de commandes disponible...")
                return self._deposit_acks()
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / name
                ftp.download("CMD", name, local, on_retry=self._retry_journal)
                text = local.read_bytes().decode("utf-8", "replace")
            self.journal("Récupération du fichier %s" % name)
            ftp.delete("CMD", name)
        except FtpError as e:
            log.warning("command file: %s", e)
            self.journal("Erreur de récupération du fichier %s" % name)
            return "failed"
        self._confirm("CMD", name)
        outcome = commands.run(text, row_time(self.clock.now(), bool(self.settings.ftp_euro_date_format)),
                               _Handlers(self))
        self.effects = outcome.effects
        if outcome.effects.config_changed:
            self.restart_needed = True
            self.settings = self.store.settings
        ack = files.ack_name(self.site, name_stamp(self.clock.now()))
        path = self.outbox / "CMD" / ack
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, files.ack_file(outcome.acks))
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
        local = {p.name for p in def_dir.glob("*.ini")} if def_dir.is_dir() else set()
        # Definitions named in the daq file but not here yet are fetched when the server has them.
        wanted = {t.def_file for t in self.settings.inputs if t.used and t.def_file}
        files = [(name, def_dir / name) for name in sorted(local | wanted)]

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
        marks = sync.Marks(self.data_dir / "state")
        try:
            remote = {n: sync.Remote(size, mtime) for n, size, mtime in ftp.listdir(ftp_kind)}
        except FtpError as e:
            log.warning("%s dir: %s", ftp_kind, e)
            self.journal("Erreur de connexion FTP")
            return "failed", []
        changed = failed = False
        uploaded = []
        for name, path in files:
            local = path.read_bytes() if path.exists() else None
            if local is None and name not in remote:
                continue
            action = sync.decide(name, local, remote.get(name), marks.get(mark_kind, name))
            if action == sync.NOTHING:
                continue
            changed = True
            if action == sync.UPLOAD:
                ok = self._upload_synced(ftp_kind, path, name, marks, mark_kind,
                                         "Dépôt du fichier de %s %%s" % label,
                                         "Erreur de dépôt du fichier de %s %%s" % label)
                if ok:
                    uploaded.append(name)
            else:
                ok = self._download_synced(ftp_kind, name, remote[name], marks, mark_kind,
                                           label, accept)
            failed = failed or not ok
        if not changed:
            self.journal("Pas de changement de fichiers de %s." % label)
        return ("failed" if failed else "done"), uploaded

    def _upload_synced(self, kind, local_path, name, marks, mark_kind, ok_msg, err_msg) -> bool:
        ftp = self._ftp()
        try:
            ftp.upload(kind, local_path, remote_name=name, tries=3, on_retry=self._retry_journal)
            st = ftp.stat(kind, name)
        except FtpError as e:
            log.warning("%s: %s", name, e)
            self.journal(err_msg % name)
            return False
        marks.set(mark_kind, name, sync.Remote(*st), local_path.read_bytes())
        self.stats["uploaded"] += 1
        self.stats["bytes"] += local_path.stat().st_size
        self.journal(ok_msg % name)
        return True

    def _download_synced(self, kind, name, remote, marks, mark_kind, label, accept) -> bool:
        """Fetch a changed server file; the server wins once `accept` took it."""
        error_msg = "Erreur de récupération du fichier de %s %s" % (label, name)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / name
                self._ftp().download(kind, name, local, on_retry=self._retry_journal)
                content = local.read_bytes()
        except FtpError as e:
            log.warning("%s: %s", name, e)
            self.journal(error_msg)
            return False
        try:
            accept(name, content)
        except Exception as e:
            log.error("rejected %s from the server: %s", name, e)
            self.journal(error_msg)
            self.journal("Fichier %s refusé : %s" % (name, e))
            return False
        marks.set(mark_kind, name, remote, content)
        self.journal("Récupération du fichier de %s %s" % (label, name))
        self.restart_needed = True
        return True

    def logs(self) -> str:
        self.journal("Gestion des fichiers de logs ...")
        data, offset = self.journal.unsent()
        outcome = "done"
        if data:
            name = files.log_name(self.site, name_stamp(self.clock.now()))
            path = self.outbox / "LOG" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, gzip.compress(data, mtime=0))
            # Entries written from here on go in the next connection's log.
            self.journal.mark_sent(offset)
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
            name = files.debug_log_name(self.site, name_stamp(self.clock.now()))
            path = self.outbox / "LOG" / name
            write_atomic(path, gzip.compress(_debug_snapshot(self.data_dir), mtime=0))
            if not self._deposit("LOG", path, "Dépôt du fichier de debug %s",
                                 "Erreur de dépôt du fichier de debug %s"):
                outcome = "failed"
        return outcome

    def firmware(self) -> str:
        name, checksum = self.settings.bin_file_name, self.settings.bin_checksum
        if not name:
            return "done"
        self.journal("Gestion du firmware...")
        state = self.data_dir / "state" / "firmware_verified"
        if state.exists() and state.read_text().strip() == checksum:
            return "done"  # already fetched and verified
        dest = self.data_dir / "firmware" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._ftp().download("BIN", name, dest, on_retry=self._retry_journal)
        except FtpError as e:
            log.warning("firmware %s: %s", name, e)
            self.journal("Erreur de récupération du fichier %s" % name)
            return "failed"
        digest = _sha256_file(dest)
        if digest != checksum.lower():
            dest.unlink()
            log.error("firmware %s: checksum %s, expected %s", name, digest, checksum)
            self.journal("Erreur de somme de contrôle du firmware %s" % name)
            return "failed"
        write_atomic(state, checksum.encode())
        self._confirm("CONFIGBIN", name)
        # Installing comes with the firmware issue; until then, say what would be installed.
        self.journal("Firmware %s vérifié : installation à venir" % name)
        return "done"

    def closing(self, failure: str | None = None) -> None:
        """Close the session, say so, resume the acquisition; ``failure``: the row that says
        why the connection was cut short, first."""
        if failure:
            self.journal(failure)
        self.close()
        if self.settings.connection_mode == "modem":
            self.journal("Déconnexion modem...")
            try:
                self.bus_call("modem", "disconnect", timeout=30.0)
            except Exception as e:
                log.warning("modem: %s", e)
        self.journal("Connexion terminée")
        self.journal("Reprise de l'acquisition de données...")
        try:
            self.bus_call("acquisition", "resume")
        except Exception as e:
            log.warning("acquisition did not resume: %s", e)


class _Handlers:
    """What command lines may do, for commands.run()."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def config_update(self, changes: dict) -> None:
        self.conn.store.update(changes, by="command")

    def params(self) -> None:
        self.conn.bus_call("acquisition", "params")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def _debug_snapshot(data_dir: Path) -> bytes:
    """The debug file: the state directory's small files, for support."""
    out = []
    for p in sorted((data_dir / "state").glob("*")):
        if p.is_file() and p.stat().st_size < 200_000:
            out.append("==> %s <==\n" % p.name)
            out.append(p.read_text(encoding="utf-8", errors="replace"))
    return "".join(out).encode("utf-8")
