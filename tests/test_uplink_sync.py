"""The sync decision for configuration and definition files (services.uplink.sync), and the
journal's "since the last upload" bookkeeping (services.uplink.journal)."""
from __future__ import annotations

import pytest

from services.uplink import sync
from ticgw.journal import Journal
from services.uplink.sync import DOWNLOAD, NOTHING, UPLOAD, VERIFY, Remote

LOCAL = b"DAQ_Period=10\r\n"
SEEN = Remote(15, 1_700_000_000.0)
MARK = {"size": 15, "mtime": 1_700_000_000.0, "sha": sync.sha(LOCAL)}


@pytest.mark.parametrize("local, remote, mark, expected", [
    (LOCAL, None, None, UPLOAD),                         # missing on the server
    (LOCAL, None, MARK, UPLOAD),                         # deleted on the server: put it back
    (None, None, None, NOTHING),
    (None, SEEN, None, DOWNLOAD),                        # only on the server
    (LOCAL, SEEN, None, DOWNLOAD),                       # never synced: the server wins
    (LOCAL, SEEN, MARK, NOTHING),                        # in step
    (b"DAQ_Period=5\r\n", SEEN, MARK, UPLOAD),           # changed locally only
    (LOCAL, Remote(16, SEEN.mtime), MARK, DOWNLOAD),     # server size changed
    (LOCAL, Remote(15, SEEN.mtime + 1), MARK, DOWNLOAD),  # server time changed
    (b"DAQ_Period=5\r\n", Remote(16, SEEN.mtime + 1), MARK, DOWNLOAD),  # both: server wins
    (None, SEEN, MARK, NOTHING),                         # local file gone, server unchanged
])
def test_decide(local, remote, mark, expected):
    assert sync.decide("X_daq.ini", local, remote, mark) == expected


# A server that lists with LIST: times to the minute. The file was listed at 12:34 (its minute),
# looked at when it was 12:34:30 (the minute not over) or the next day (long over).
MINUTE = 1_700_000_040.0
LISTED = Remote(15, MINUTE, 60)
EXACT = MINUTE + 17
FRESH = {"size": 15, "mtime": EXACT, "sha": sync.sha(LOCAL), "seen": MINUTE + 30,
         "listed": [MINUTE, 60]}
OLD = dict(FRESH, seen=MINUTE + 86400)
UPLOADED = {"size": 15, "mtime": EXACT, "sha": sync.sha(LOCAL), "seen": MINUTE + 30}


@pytest.mark.parametrize("local, remote, mark, expected", [
    (LOCAL, LISTED, OLD, NOTHING),                       # the minute was over when we looked
    (LOCAL, LISTED, FRESH, VERIFY),                      # an edit within that minute may hide
    (LOCAL, LISTED, UPLOADED, VERIFY),                   # uploaded: never listed yet
    (LOCAL, Remote(15, MINUTE + 60, 60), FRESH, DOWNLOAD),  # a later minute
    (LOCAL, Remote(16, MINUTE, 60), FRESH, DOWNLOAD),    # another size
    (LOCAL, Remote(15, MINUTE - 40, 86400), OLD, VERIFY),  # now listed by the day
    (b"DAQ_Period=5\r\n", LISTED, OLD, UPLOAD),          # changed locally only
])
def test_decide_with_listings_to_the_minute(local, remote, mark, expected):
    assert sync.decide("X_daq.ini", local, remote, mark) == expected


def test_settled_allows_for_servers_listing_local_time():
    assert not sync.settled(MINUTE, 60, MINUTE + 59)
    assert not sync.settled(MINUTE, 60, MINUTE + 14 * 3600)   # UTC+14 listings
    assert sync.settled(MINUTE, 60, MINUTE + 60 + sync.SETTLE)
    assert not sync.settled(MINUTE, 60, None)


def test_marks_persist(tmp_path):
    m = sync.Marks(tmp_path)
    assert m.get("config", "X_daq.ini") is None
    m.set("config", "X_daq.ini", LOCAL, size=SEEN.size, mtime=SEEN.mtime)
    again = sync.Marks(tmp_path)
    assert again.get("config", "X_daq.ini") == dict(MARK, seen=None)
    m.set("config", "X_daq.ini", LOCAL, size=15, mtime=EXACT, listed=LISTED, seen=MINUTE + 30)
    assert sync.Marks(tmp_path).get("config", "X_daq.ini") == FRESH
    assert again.get("def", "X_daq.ini") is None
    assert [p.name for p in tmp_path.iterdir()] == ["sync.json"]


def test_unreadable_marks_mean_nothing_synced(tmp_path):
    (tmp_path / "sync.json").write_text("{not json")
    assert sync.Marks(tmp_path).get("config", "X_daq.ini") is None


def test_journal_unsent_and_marks(tmp_path):
    t = iter(range(1_714_564_800, 1_714_565_800))
    j = Journal(tmp_path, clock=lambda: float(next(t)))
    assert j.unsent() == (b"", 0)
    entry = j("Demande de connexion...")
    assert (entry["date"], entry["hour"]) == ("01/05/24", "12:00:00")
    data, offset = j.unsent()
    assert data == "01/05/24\t12:00:00\tDemande de connexion...\n".encode()
    j.mark_sent(offset)
    assert j.unsent()[0] == b""
    j("Connexion terminée")
    assert j.unsent()[0].decode().endswith("\tConnexion terminée\n")
    assert j.tail(1) == [["01/05/24", "12:00:01", "Connexion terminée"]]
    # a journal cut short (rotated) is sent whole
    (tmp_path / "journal.log").write_text("01/05/24\t12:00:02\tX\n")
    assert j.unsent()[0] == b"01/05/24\t12:00:02\tX\n"


def test_journal_sent_part_is_cut_back_when_it_grows(tmp_path):
    from ticgw.journal import Journal

    j = Journal(tmp_path, clock=lambda: 1763900000.0)
    j.MAX_BYTES = 2000
    j.KEEP_SENT = 5
    for i in range(100):
        j("message %d" % i)
    data, offset = j.unsent()
    j.mark_sent(offset)
    j("after the upload")
    assert [r[2] for r in j.tail(50)] == ["message %d" % i for i in range(95, 100)] + [
        "after the upload"]
    data, offset = j.unsent()
    assert data.decode().endswith("\tafter the upload\n") and data.count(b"\n") == 1


@pytest.mark.parametrize("kill_after", [1, 2])
def test_journal_cut_back_killed_halfway_loses_no_unsent_row(tmp_path, monkeypatch, kill_after):
    """The cut-back writes the upload mark and the journal: a process killed between two of
    those writes may send rows again, never skip one that was not sent."""
    from ticgw import journal as journal_mod
    from ticgw.journal import Journal

    j = Journal(tmp_path, clock=lambda: 1763900000.0)
    j.MAX_BYTES = 2000
    j.KEEP_SENT = 5
    for i in range(10):
        j("sent %d" % i)
    j.mark_sent(j.unsent()[1])                     # an upload, no cut yet (under 2000 bytes)
    for i in range(80):
        j("unsent %d" % i)
    _, offset = j.unsent()
    for i in range(40):                            # written after the upload file was made
        j("later %d" % i)
    real = journal_mod.write_atomic
    writes = []

    def killed_after_some_writes(path, data):
        if len(writes) == kill_after:
            raise SystemExit("killed")
        writes.append(path)
        real(path, data)

    monkeypatch.setattr(journal_mod, "write_atomic", killed_after_some_writes)
    j.MAX_BYTES = 3000                             # the file is over it: mark_sent cuts it back
    with pytest.raises(SystemExit):
        j.mark_sent(offset)
    monkeypatch.setattr(journal_mod, "write_atomic", real)
    rows = [r.split("\t")[2] for r in Journal(tmp_path).unsent()[0].decode().splitlines()]
    assert ["later %d" % i for i in range(40)] == [r for r in rows if r.startswith("later")]
