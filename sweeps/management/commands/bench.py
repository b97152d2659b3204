"""``manage.py bench``: platform figures (ingest, live latency, history payload).

Runs in a throwaway environment (temp SQLite DB, temp data folder, its own redis-server on
a temp unix socket), never in the configured database: the command re-runs itself as a
child process with that environment. Prints a table and writes it to
``bench-results/platform.md``.

1. Ingest: a generated 1,000,000-row layout-3 ``history.csv`` through
   ``do_ingest_history`` (parse + store in chunks + epoch summaries), against
   ``pandas.read_csv`` of the same file in the same run.
2. Live latency: a script appends 200 rows, one every 25 ms, each stamped with the time it
   was written; the runner's tail loop ingests them and a websocket client (the real
   consumer over the real Redis channel layer) receives ``history.rows``; latency = receive
   time - write time, per row.
3. History payload of the 1,000,000-row trial: ``history_payload`` + JSON encoding, time
   and bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

CHILD_FLAG = "LUMINIDE_BENCH_CHILD"
ROWS = 1_000_000
EPOCHS = 50
LATENCY_ROWS = 200

LATENCY_SCRIPT = """
import os, time
t0 = float(os.environ["BENCH_T0"])
n = int(os.environ["BENCH_ROWS"])
with open("history.csv", "w") as fh:
    fh.write("index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\\n")
    fh.flush()
    time.sleep(1.0)
    for i in range(n):
        fh.write(f"{i},0,{(i + 1) * 32},{time.time() - t0:.6f},,\\n")
        fh.flush()
        time.sleep(0.025)
    fh.write(f"{n},0,{n * 32},,,1.0\\n")
"""


def generate_history(path: Path, rows: int = ROWS, epochs: int = EPOCHS) -> None:
    """A layout-3 history: train rows, a validation row every 10 steps, epoch-end rows."""
    import numpy as np
    import pandas as pd

    per_epoch = rows // epochs
    steps = per_epoch - 1
    rng = np.random.default_rng(0)
    epoch = np.repeat(np.arange(epochs), per_epoch)
    pos = np.tile(np.arange(per_epoch), epochs)
    is_end = pos == steps
    sample_count = np.where(is_end, steps * 32, (pos + 1) * 32)
    frac = epoch + (pos + 1) / per_epoch
    train = 2.0 / (1 + frac) + rng.normal(0, 0.05, len(frac))
    train = np.where(is_end, np.nan, train)
    val = np.where(
        (pos % 10 == 9) & ~is_end, 2.1 / (1 + frac) + rng.normal(0, 0.05, len(frac)), np.nan
    )
    epoch_val = np.where(is_end, 2.1 / (2 + epoch), np.nan)
    df = pd.DataFrame(
        {
            "epoch": epoch,
            "sample_count": sample_count,
            "train_loss": train,
            "val_loss": val,
            "epoch_val_loss": epoch_val,
        }
    )
    df.index.name = "index"
    df.to_csv(path, float_format="%.6g", na_rep="")


class Command(BaseCommand):
    help = "Benchmark ingest, live latency and history payload in a throwaway environment."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rows", type=int, default=ROWS)
        parser.add_argument(
            "--output", default=str(settings.BASE_DIR / "bench-results" / "platform.md")
        )

    def handle(self, *args, **options) -> None:
        if os.environ.get(CHILD_FLAG):
            self._bench(options)
        else:
            self._spawn(options)

    # -- parent: throwaway environment ---------------------------------------------------

    def _spawn(self, options) -> None:
        from luminide.launcher import redis_server_command

        root = Path(tempfile.mkdtemp(prefix="lum-bench-", dir="/tmp"))
        sock = root / "redis.sock"
        redis = subprocess.Popen(
            redis_server_command(sock),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        env = {
            **os.environ,
            CHILD_FLAG: "1",
            "DATABASE_URL": f"sqlite:///{root / 'bench.sqlite3'}",
            "LUMINIDE_DATA_DIR": str(root / "data"),
            "LUMINIDE_VAR_DIR": str(root / "var"),
            "REDIS_URL": f"unix://{sock}",
            "LOG_LEVEL": "WARNING",
        }
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        try:
            deadline = time.monotonic() + 10
            while not sock.exists():
                if time.monotonic() > deadline:
                    raise CommandError("redis-server did not start")
                time.sleep(0.05)
            subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
            rc = subprocess.run(
                [*manage, "bench", "--rows", str(options["rows"]), "--output", options["output"]],
                env=env,
            ).returncode
        finally:
            redis.terminate()
            redis.wait(timeout=10)
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        if rc:
            raise CommandError(f"bench failed (exit {rc})")

    # -- child: the measurements ---------------------------------------------------------

    def _bench(self, options) -> None:
        from django.contrib.auth import get_user_model

        from luminide.models import Project

        user = get_user_model().objects.create_user("bench")
        project = Project.objects.create(slug="bench", name="bench", owner=user)
        project.code_dir.mkdir(parents=True)
        project.input_dir.mkdir(parents=True)
        results: list[tuple[str, str, str]] = []
        trial = self._ingest(project, options["rows"], results)
        self._payload(trial, results)
        self._latency(project, user, results)
        self._report(results, options["output"])

    def _new_trial(self, project):
        from sweeps.models import Experiment, Trial

        number = project.experiments.count() + 1
        experiment = Experiment.objects.create(project=project, number=number)
        return Trial.objects.create(experiment=experiment, number=0)

    def _ingest(self, project, rows: int, results):
        import pandas as pd

        from sweeps.actions import do_ingest_history

        path = Path(settings.LUMINIDE_DATA_DIR) / "history-1m.csv"
        t = time.perf_counter()
        generate_history(path, rows)
        self.stdout.write(
            f"generated {rows:,} rows in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
        )
        pandas_times, ingest_times = [], []
        trial = None
        for _ in range(5):  # best of five, each pair measured back to back
            t = time.perf_counter()
            pd.read_csv(path)
            pandas_times.append(time.perf_counter() - t)
            trial = self._new_trial(project)
            t = time.perf_counter()
            result = do_ingest_history(trial, path.read_bytes())
            ingest_times.append(time.perf_counter() - t)
            assert result.rows == rows, result
        best_pd, best_ingest = min(pandas_times), min(ingest_times)
        results += [
            (
                "ingest 1M rows (parse + store + epochs)",
                f"{best_ingest:.2f} s",
                f"{rows / best_ingest:,.0f} rows/s",
            ),
            ("pandas.read_csv same file", f"{best_pd:.2f} s", f"{rows / best_pd:,.0f} rows/s"),
            ("ingest / read_csv ratio", f"{best_ingest / best_pd:.2f}x", "target <= 3x"),
        ]
        trial.refresh_from_db()
        return trial

    def _payload(self, trial, results) -> None:
        from sweeps.history import history_payload

        times, size = [], 0
        for _ in range(3):
            t = time.perf_counter()
            body = json.dumps(history_payload(trial), allow_nan=False).encode()
            times.append(time.perf_counter() - t)
            size = len(body)
        results += [
            (
                f"history payload, {trial.rows_stored:,} stored rows",
                f"{min(times):.2f} s (median {statistics.median(times):.2f})",
                f"{size / 1e6:.2f} MB; target < 1 s, < 2 MB",
            )
        ]

    def _latency(self, project, user, results) -> None:
        from asgiref.sync import sync_to_async
        from channels.routing import URLRouter
        from channels.testing import WebsocketCommunicator
        from django.db import close_old_connections

        from sweeps.routing import websocket_urlpatterns
        from sweeps.runner import run_trial

        (project.code_dir / "full.sh").write_text("python ../code/train.py\n")
        (project.code_dir / "config.yaml").write_text("bench: true\n")
        (project.code_dir / "train.py").write_text(LATENCY_SCRIPT)
        trial = self._new_trial(project)
        t0 = time.time()
        os.environ["BENCH_T0"] = repr(t0)
        os.environ["BENCH_ROWS"] = str(LATENCY_ROWS)
        latencies: list[float] = []

        async def watch() -> None:
            comm = WebsocketCommunicator(
                URLRouter(websocket_urlpatterns), f"/ws/experiments/{trial.experiment_id}/"
            )
            comm.scope["user"] = user
            connected, _ = await comm.connect(timeout=30)
            if not connected:
                raise CommandError("websocket refused")
            await comm.receive_json_from(timeout=10)  # hello

            def run() -> None:
                try:
                    run_trial(trial.pk)
                finally:
                    close_old_connections()

            runner = threading.Thread(target=run)
            await sync_to_async(lambda: None)()
            runner.start()
            while len(latencies) < LATENCY_ROWS:
                event = await comm.receive_json_from(timeout=60)
                now = time.time()
                if event["type"] != "history.rows":
                    continue
                for stamp in event["series"]["train"]["y"]:
                    latencies.append(now - (t0 + stamp))
            await comm.disconnect()
            await asyncio.get_running_loop().run_in_executor(None, runner.join)

        asyncio.run(watch())
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        results.append(
            (
                f"live latency, row appended -> websocket ({LATENCY_ROWS} rows)",
                f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms",
                f"max {latencies[-1] * 1000:.0f} ms; target p95 < 1 s",
            )
        )

    def _report(self, results, output: str) -> None:
        import platform

        header = ["measure", "value", "notes"]
        width = [max(len(r[i]) for r in [*results, header]) for i in range(3)]
        lines = [
            "| " + " | ".join(h.ljust(w) for h, w in zip(header, width, strict=True)) + " |",
            "|" + "|".join("-" * (w + 2) for w in width) + "|",
        ]
        for row in results:
            lines.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)) + " |"
            )
        table = "\n".join(lines)
        self.stdout.write(table)
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            "# Platform benchmark (`manage.py bench`)\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite.\n\n{table}\n"
        )
        self.stdout.write(f"written to {out}")
