"""``python -m luminide.launcher``: starts Redis, a worker and daphne; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from luminide.launcher import child_pids, free_port, manage, process_alive, running_launcher

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_launcher_starts_and_stops_everything():
    root = Path(tempfile.mkdtemp(prefix="lum-l-", dir="/tmp"))
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "luminide.settings",
        "LUMINIDE_DATA_DIR": str(root / "data"),
        "LUMINIDE_VAR_DIR": str(root / "var"),
        "LUMINIDE_PORT": str(port),
        "LUMINIDE_WEB_PROCESSES": "2",
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    manage(env, "migrate", "-v", "0")
    (root / "var").mkdir(exist_ok=True)
    (root / "var" / "redis.sock").write_text("stale")  # left by a killed run
    log = root / "launcher.log"
    with running_launcher(env, log) as proc:
        # The banner follows the launcher's own HTTP probe, which may answer after ours.
        deadline = time.monotonic() + 60
        while "demo / " not in (text := log.read_text()):
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.2)
        assert "removing stale socket" in text
        assert f"http://127.0.0.1:{port}/" in text
        pids = [int((root / "var" / f).read_text()) for f in ("redis.pid", "web.pid")]
        while not (root / "var" / "worker.pid").exists():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        pids.append(int((root / "var" / "worker.pid").read_text()))
        daphnes = child_pids(int((root / "var" / "web.pid").read_text()))
        assert len(daphnes) == 2, "LUMINIDE_WEB_PROCESSES=2 starts two daphne processes"
        pids += daphnes
        assert all(process_alive(p) for p in pids)

        # A worker killed (e.g. by the out-of-memory killer) is started again; the rest stays.
        worker_pid = int((root / "var" / "worker.pid").read_text())
        pids.remove(worker_pid)
        os.kill(worker_pid, signal.SIGKILL)
        while "worker exited with code -9; starting it again" not in log.read_text():
            assert time.monotonic() < deadline + 60, log.read_text()[-3000:]
            time.sleep(0.2)
        pid_file = root / "var" / "worker.pid"  # written by the new worker once it runs
        while not pid_file.exists() or int(pid_file.read_text() or 0) in (0, worker_pid):
            assert time.monotonic() < deadline + 60, log.read_text()[-3000:]
            time.sleep(0.2)
        pids.append(int(pid_file.read_text()))
        assert proc.poll() is None and all(process_alive(p) for p in pids)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    assert rc == 0, log.read_text()[-3000:]
    assert not any(process_alive(p) for p in pids)
    assert "all stopped" in log.read_text()


@pytest.mark.parametrize("raw", ["0", "-2", "two", ""])
def test_bad_web_process_count_is_refused_by_name(monkeypatch, raw):
    from luminide.serve import web_processes

    monkeypatch.setenv("LUMINIDE_WEB_PROCESSES", raw)
    with pytest.raises(
        SystemExit, match=f"LUMINIDE_WEB_PROCESSES must be a positive integer, not '{raw}'"
    ):
        web_processes()


def test_ipv6_host_with_several_web_processes_is_refused():
    from luminide.serve import _daphne_commands

    with pytest.raises(SystemExit, match="needs an IPv4 host; '::1' is IPv6"):
        _daphne_commands("::1", free_port(), 2)
    port = free_port()
    commands, fd = _daphne_commands("::1", port, 1)  # one process binds the address itself
    assert fd is None
    assert commands == [
        [sys.executable, "-m", "daphne", "-b", "::1", "-p", str(port), "luminide.asgi:application"]
    ]


def test_serve_stops_all_and_fails_when_one_daphne_dies():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminide.serve", "--port", str(port), "--processes", "2"],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "luminide.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while len(daphnes := child_pids(proc.pid)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        os.kill(daphnes[0], signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
        assert b"a daphne process exited" in proc.stdout.read()
        assert not process_alive(daphnes[1])
    finally:
        proc.kill()
