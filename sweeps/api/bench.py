"""Benchmark of the Training Monitor API: checkpoint creates per second and latency.

``bench_api()`` starts a real server on the embedded default (SQLite in WAL mode, a real
Redis for the live events, daphne) in a temporary folder, creates one experiment with a
training monitor (``max_checkpoints`` 200, a convergence criterion) and lets 8 concurrent
clients, each with its own training run on a keep-alive connection, post checkpoints as
fast as the server answers. It prints throughput, p50/p95/p99 latency, the ratios to the
targets (>= 300 creates/s, p95 < 100 ms) and checks that every checkpoint was stored.

``live_server()`` is also used by the concurrency test.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminide.launcher import child_pids, free_port, http_answers

BASE_DIR = Path(__file__).resolve().parents[2]
TARGET_RATE = 300.0
TARGET_P95_MS = 100.0

_CREATE_TOKEN = """
from django.contrib.auth import get_user_model
from luminide.models import ApiToken
user, _ = get_user_model().objects.get_or_create(username="bench")
print(ApiToken.issue(user, "bench")[1])
"""


@dataclass
class LiveServer:
    url: str
    host: str
    port: int
    token: str
    root: Path
    pid: int | None = None

    @property
    def db_path(self) -> Path:
        return self.root / "db.sqlite3"

    def auth_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.token}:".encode()).decode()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


@contextlib.contextmanager
def live_server(
    *,
    server: str = "daphne",
    processes: int = 1,
    redis: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[LiveServer]:
    """A migrated, empty Luminide in a temporary folder, served on a free port.

    Args:
        server: ``daphne`` (the embedded default's server, via ``luminide.serve``) or
            ``runserver`` (threaded WSGI).
        processes: daphne processes on the one socket (``LUMINIDE_WEB_PROCESSES``).
        redis: Start a private Redis (unix socket) for the channel layer, as ``make run``
            does; without it live events are skipped (logged once a minute).
        env: Extra environment for the server (e.g. ``DATABASE_CONN_MAX_AGE``).

    Yields:
        The server's URL, host, port, an API token (user ``bench``) and its folder.
    """
    root = Path(tempfile.mkdtemp(prefix="lmbench-", dir="/tmp"))
    procs: list[subprocess.Popen] = []
    extra_env = dict(env or {})
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "luminide.settings",
        "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "LUMINIDE_DATA_DIR": str(root / "data"),
        "LUMINIDE_VAR_DIR": str(root / "var"),
        "REDIS_URL": f"unix://{root / 'redis.sock'}",
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("LUMINIDE_OPTUNA_STORAGE", None)
    env.update(extra_env)
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed in finally
    try:
        if redis:
            from luminide.launcher import redis_server_command

            procs.append(
                subprocess.Popen(
                    redis_server_command(root / "redis.sock"),
                    stdout=log,
                    stderr=log,
                )
            )
            _wait((root / "redis.sock").exists, 10, "redis")
        py = sys.executable
        subprocess.run(
            [py, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=BASE_DIR,
            env=env,
            check=True,
            stdout=log,
            stderr=log,
        )
        token = (
            subprocess.run(
                [py, "manage.py", "shell", "-c", _CREATE_TOKEN],
                cwd=BASE_DIR,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )  # after the shell's auto-import banner
        port = free_port()
        if server == "daphne":
            cmd = [py, "-m", "luminide.serve", "--port", str(port), "--processes", str(processes)]
        elif server == "runserver":
            cmd = [py, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        else:
            raise ValueError(f"server must be daphne or runserver, not {server!r}")
        web = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=log, stderr=log)
        procs.append(web)
        _wait(lambda: http_answers("127.0.0.1", port), 60, server)
        yield LiveServer(f"http://127.0.0.1:{port}", "127.0.0.1", port, token, root, web.pid)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


class Client:
    """A minimal keep-alive JSON client (http.client: little CPU taken from the server)."""

    def __init__(self, srv: LiveServer) -> None:
        self.srv = srv
        self.conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
        self.headers = {"Authorization": srv.auth_header(), "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        for attempt in range(2):
            try:
                self.conn.request(method, path, data, self.headers)
                response = self.conn.getresponse()
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


BENCH_EXPERIMENT = {
    "name": "bench",
    "parameters": [{"name": "lr", "type": "double", "bounds": {"min": 1e-4, "max": 1.0}}],
    "metrics": [{"name": "val_loss", "objective": "minimize"}],
    "training_monitor": {
        "max_checkpoints": 200,
        "early_stopping_criteria": [
            {"type": "convergence", "name": "plateau", "lookback_checkpoints": 3}
        ],
    },
}


def post_checkpoints(
    srv: LiveServer, clients: int, per_client: int, *, method: str = "POST"
) -> tuple[list[float], list[int], float, list[str]]:
    """Each of ``clients`` threads opens a run and posts ``per_client`` checkpoints
    (``method="GET"``: fetches its training run instead, the read-path baseline).

    Returns (latencies in s, status codes, wall time in s, run ids).
    """
    setup = Client(srv)
    status, exp = setup.call("POST", "/v1/experiments", BENCH_EXPERIMENT)
    assert status == 201, exp
    runs = []
    for _ in range(clients):
        _, sug = setup.call("POST", f"/v1/experiments/{exp['id']}/suggestions", {})
        status, run = setup.call(
            "POST", f"/v1/experiments/{exp['id']}/training_runs", {"suggestion": sug["id"]}
        )
        assert status == 201, run
        runs.append(run["id"])
    setup.close()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[list[int]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def worker(i: int) -> None:
        client = Client(srv)
        path = f"/v1/training_runs/{runs[i]}"
        if method == "POST":
            path += "/checkpoints"
        start.wait()
        for k in range(per_client):
            body = {"values": [{"name": "val_loss", "value": 1.0 / (k + 1) + 0.01 * i}]}
            t0 = time.perf_counter()
            code, _ = client.call(method, path, body if method == "POST" else None)
            latencies[i].append(time.perf_counter() - t0)
            statuses[i].append(code)
        client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return [x for xs in latencies for x in xs], [s for ss in statuses for s in ss], wall, runs


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_api(
    *,
    clients: int = 8,
    per_client: int = 200,
    server: str = "daphne",
    processes: int = 1,
    redis: bool = True,
    env: dict[str, str] | None = None,
    out: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Run the checkpoint benchmark and print its figures; returns them as a dict.

    ``env`` adds server environment variables (e.g. ``{"DATABASE_CONN_MAX_AGE": "60"}``).
    """
    with live_server(server=server, processes=processes, redis=redis, env=env) as srv:
        # Warm-up: imports, the first connections, SQLite page cache.
        post_checkpoints(srv, 2, 10)
        cpu0 = _server_cpu(srv)
        lat, codes, wall, runs = post_checkpoints(srv, clients, per_client)
        cpu = _server_cpu(srv) - cpu0
        base_lat, _, base_wall, _ = post_checkpoints(srv, clients, per_client, method="GET")
        with sqlite3.connect(srv.db_path) as db:
            marks = ",".join("?" * len(runs))
            stored = db.execute(
                f"SELECT COUNT(*) FROM sweeps_checkpoint WHERE trial_id IN ({marks})",
                [int(r) for r in runs],
            ).fetchone()[0]
    total = clients * per_client
    rate = total / wall
    p50, p95, p99 = (1000 * _percentile(lat, q) for q in (50, 95, 99))
    ok = sum(1 for c in codes if c == 201)
    result = {
        "server": server,
        "processes": processes,
        "clients": clients,
        "checkpoints": total,
        "created_201": ok,
        "stored": stored,
        "wall_s": wall,
        "rate_per_s": rate,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "rate_ratio": rate / TARGET_RATE,
        "p95_ratio": TARGET_P95_MS / p95,
        "server_cpu_ms_per_create": 1000 * cpu / total if cpu else None,
        "read_baseline_per_s": total / base_wall,
        "read_baseline_p95_ms": 1000 * _percentile(base_lat, 95),
    }
    out(
        f"api checkpoints ({server} x{processes}, redis={'on' if redis else 'off'}"
        f"{''.join(f', {k}={v}' for k, v in (env or {}).items())}, {clients} clients, "
        f"{total} creates): {rate:.0f}/s (target >= {TARGET_RATE:.0f}/s, "
        f"x{result['rate_ratio']:.2f}); latency p50 {p50:.1f} ms, p95 {p95:.1f} ms "
        f"(target < {TARGET_P95_MS:.0f} ms, x{result['p95_ratio']:.2f}), p99 {p99:.1f} ms; "
        f"201 answers {ok}/{total}, stored {stored}/{total}"
    )
    cpu_ms = result["server_cpu_ms_per_create"]
    out(f"  server CPU per create: {cpu_ms:.1f} ms" if cpu_ms else "  server CPU per create: n/a")
    out(
        f"  read baseline (GET training run, same clients): {result['read_baseline_per_s']:.0f}/s, "
        f"p95 {result['read_baseline_p95_ms']:.1f} ms; creates/reads ratio "
        f"{rate / result['read_baseline_per_s']:.2f}; load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    return result


def _server_cpu(srv: LiveServer) -> float:
    """CPU seconds (user + system) used so far by the server process and its children."""
    if srv.pid is None:
        return 0.0
    ticks = 0
    for pid in (srv.pid, *child_pids(srv.pid)):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":  # python -m sweeps.api.bench [daphne|runserver] [processes]
    bench_api(
        server=sys.argv[1] if len(sys.argv) > 1 else "daphne",
        processes=int(sys.argv[2]) if len(sys.argv) > 2 else 1,
    )
