"""The cross-process task lock: one task at a time, the manual's refusal, freed when its holder
dies."""
import signal
import subprocess
import sys
import threading

import pytest
import zmq

from bus import endpoints as eps
from bus.client import CommandClient, CommandServer
from bus.errors import CommandRefused, RemoteError
from bus.loop import Loop
from bus.tasklock import TaskBusy, TaskLock
from bus.testing import REPO, child_env, short_run_dir

MESSAGE = ("Une tâche 'Connexion' est déjà en cours d'exécution. "
           "Veuillez réessayer dans quelques instants.")


@pytest.fixture
def run_dir(tmp_path):
    return short_run_dir(tmp_path)


def test_second_acquire_refused_with_the_manuals_words(run_dir):
    lock = TaskLock(run_dir)
    assert lock.current() is None
    held = lock.acquire("Connexion")
    assert lock.current() == "Connexion"
    with pytest.raises(TaskBusy) as e:
        TaskLock(run_dir).acquire("Détection")
    assert str(e.value) == MESSAGE
    assert isinstance(e.value, CommandRefused) and e.value.code == "busy"
    assert e.value.running == "Connexion"
    held.release()
    held.release()                        # twice is harmless
    assert lock.current() is None
    with lock.acquire("Mise à jour") as h:
        assert h.held and TaskLock(run_dir).current() == "Mise à jour"
        with pytest.raises(TaskBusy, match="'Mise à jour'"):
            lock.acquire("Connexion")
    assert not h.held and lock.current() is None


def test_lock_freed_when_holder_is_killed(run_dir):
    code = ("import sys; from bus.tasklock import TaskLock; h = TaskLock(sys.argv[1])"
            ".acquire('Connexion'); print('held', flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], env=child_env(run_dir),
                         cwd=str(REPO), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"held"
        with pytest.raises(TaskBusy) as e:
            TaskLock(run_dir).acquire("Détection")
        assert str(e.value) == MESSAGE
        p.send_signal(signal.SIGKILL)
        p.wait(5)
        assert TaskLock(run_dir).current() is None
        with TaskLock(run_dir).acquire("Détection"):
            assert TaskLock(run_dir).current() == "Détection"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        p.stdout.close()


def test_refusal_travels_over_the_bus(run_dir):
    ctx = zmq.Context()
    lock = TaskLock(run_dir)

    def detect(params):
        handle = lock.acquire("Détection")      # TaskBusy goes through as a clean refusal
        handle.release()
        return {"started": True}

    loop = Loop()
    e = eps.resolve(run_dir)
    server = CommandServer(ctx, e.command("acquisition"), "acquisition", {"detect": detect},
                           loop=loop)
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    client = CommandClient(ctx, e, "web")
    try:
        assert client.call("acquisition", "detect", timeout=5.0) == {"started": True}
        with lock.acquire("Connexion"):
            with pytest.raises(RemoteError) as err:
                client.call("acquisition", "detect", timeout=5.0)
        assert err.value.code == "busy" and err.value.message == MESSAGE
    finally:
        client.close()
        loop.stop()
        th.join(5)
        server.close()
        loop.close()
        ctx.term()
