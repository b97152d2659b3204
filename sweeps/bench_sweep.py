"""Sweep benchmarks (``make bench``): the sweep page at scale, and per-trial overhead.

* :func:`bench_sweep_page` builds a sweep of 1,000 finished trials x 50 epochs in a scratch
  database and times the sweep page's data endpoint (target: under 1 s and 2 MB).
* :func:`bench_trial_overhead` starts the embedded default (``python -m luminide.launcher``:
  real Redis, one real Celery worker, daphne) on a scratch data folder, runs a sweep of
  trials whose script only records when it started, and reports the time from ``ask``
  (the trial row is claimed right before the study is asked) to the training process
  starting (target: under 1 s).

Both print a short report and return the numbers as a dict. Neither touches ``./data``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from luminide.launcher import free_port, manage, running_launcher

REPO = Path(__file__).resolve().parents[1]

SWEEP_YAML = """\
parameters:
  arch:       {values: [small, wide, deep]}
  optimizer:  {values: [sgd, adam]}
  lr:         {distribution: log_uniform, min: 0.0001, max: 1.0}
  batch_size: {distribution: q_uniform, min: 8, max: 128, q: 8}
  dropout:    {distribution: uniform, min: 0.0, max: 0.6}
"""
# Every searched parameter has its default here (a sweep refuses one that has not).
CONFIG_YAML = "arch: small\noptimizer: sgd\nlr: 0.01\nbatch_size: 32\ndropout: 0.2\nseed: 0\n"


def _report(title: str, rows: list[tuple[str, str]]) -> None:
    print(title)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


# ---------------------------------------------------------------- sweep page


def populate_sweep(project, n_trials: int = 1000, n_epochs: int = 50, seed: int = 0):
    """Add a Fast Sweep of ``n_trials`` finished trials x ``n_epochs`` epochs (about 5%
    failed) to ``project``, straight into the database; returns the experiment."""
    from django.db.models import Max
    from django.utils import timezone

    from sweeps.models import Experiment, RunState, Trial, TrialEpoch

    rng = random.Random(seed)
    now = timezone.now()
    exp = Experiment.objects.create(
        project=project,
        number=(project.experiments.aggregate(m=Max("number"))["m"] or 0) + 1,
        description=f"{n_trials} trials x {n_epochs} epochs (synthetic)",
        kind=Experiment.Kind.FAST_SWEEP,
        state=RunState.COMPLETE,
        spec={"sweep_yaml": SWEEP_YAML, "n_trials": n_trials, "parallel": 4, "study": ""},
        started_at=now - timedelta(hours=5),
        finished_at=now,
    )
    trials = []
    for k in range(n_trials):
        failed = rng.random() < 0.05
        trials.append(
            Trial(
                experiment=exp,
                number=k,
                state=RunState.FAILED if failed else RunState.COMPLETE,
                failure_reason="exit code 1: RuntimeError: diverged" if failed else "",
                params={
                    "arch": rng.choice(["small", "wide", "deep"]),
                    "optimizer": rng.choice(["sgd", "adam"]),
                    "lr": 10 ** rng.uniform(-4, 0),
                    "batch_size": rng.randrange(8, 129, 8),
                    "dropout": rng.uniform(0, 0.6),
                },
                epochs_done=n_epochs,
                started_at=now - timedelta(seconds=20 * (n_trials - k) + 15),
                finished_at=now - timedelta(seconds=20 * (n_trials - k)),
                metadata={"told": True},
            )
        )
    Trial.objects.bulk_create(trials, batch_size=500)
    trials = list(exp.trials.order_by("number"))
    epochs = []
    for trial in trials:
        floor, speed = rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.3)
        best = float("inf")
        for e in range(n_epochs):
            val = floor + 2.0 * (1 - speed) ** e + rng.gauss(0, 0.01)
            if trial.state == RunState.FAILED and e > n_epochs // 2:
                val = float("inf")
            best = min(best, val)
            epochs.append(
                TrialEpoch(
                    trial=trial,
                    epoch=e,
                    train_loss=val * 0.9,
                    val_loss=val,
                    score=floor + rng.gauss(0, 0.02),
                )
            )
        trial.best_val_loss = best
        trial.score = epochs[-1].score
        trial.value = None if trial.state == RunState.FAILED else trial.score
    TrialEpoch.objects.bulk_create(epochs, batch_size=2000)
    Trial.objects.bulk_update(trials, ["best_val_loss", "score", "value"], batch_size=500)
    values = [t.value for t in trials if t.value is not None]
    Experiment.objects.filter(pk=exp.pk).update(best_value=min(values))
    return exp


def _populate(n_trials: int, n_epochs: int, seed: int):
    from django.contrib.auth import get_user_model

    from luminide.models import Project

    user = get_user_model().objects.create_user("bench", password="bench-password")
    project = Project.objects.create(slug="bench", name="bench", owner=user)
    return user, populate_sweep(project, n_trials, n_epochs, seed)


def _time_get(client, url: str, repeat: int) -> tuple[list[float], int, int]:
    times, size, status = [], 0, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t0)
        size, status = len(response.content), response.status_code
    return times, size, status


def bench_sweep_page(n_trials: int = 1000, n_epochs: int = 50, repeat: int = 5) -> dict:
    """Time the sweep page data endpoint on a scratch database with a big finished sweep.

    Returns:
        ``{"data_s", "data_bytes", "summary_s", "summary_bytes", "page_s", ...}``: median
        seconds and payload bytes of the data endpoint (all curves), of the summary alone
        (what a live re-sync fetches) and of the HTML page.
    """
    import django

    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        os.environ["DJANGO_SETTINGS_MODULE"] = "luminide.settings"
    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment, teardown_test_environment
    from django.urls import reverse

    scratch = Path(tempfile.mkdtemp(prefix="lum-bench-"))
    saved = settings.LUMINIDE_DATA_DIR, list(settings.ALLOWED_HOSTS)
    db = settings.DATABASES["default"]
    old_name = db["NAME"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(scratch / "bench.sqlite3")
    setup_test_environment()
    settings.LUMINIDE_DATA_DIR = scratch / "data"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        t0 = time.perf_counter()
        user, exp = _populate(n_trials, n_epochs, seed=0)
        build_s = time.perf_counter() - t0
        client = Client()
        client.force_login(user)
        data_url = reverse("sweep_data", args=["bench", exp.number])
        page_url = reverse("experiment_detail", args=["bench", exp.number])
        client.get(data_url)  # warm up (imports, first queries)
        data_t, data_b, status = _time_get(client, data_url, repeat)
        assert status == 200, status
        summ_t, summ_b, _ = _time_get(client, data_url + "?curves=", repeat)
        one_t, one_b, _ = _time_get(client, data_url + "?curves=7", repeat)
        page_t, page_b, _ = _time_get(client, page_url, repeat)
        imp_url = reverse("sweep_importance", args=["bench", exp.number])
        t0 = time.perf_counter()
        import optuna

        optuna.importance.FanovaImportanceEvaluator  # noqa: B018 (imports scikit-learn, once per process)
        import_s = time.perf_counter() - t0
        imp_first, _, imp_status = _time_get(client, imp_url, 1)
        imp_cached, _, _ = _time_get(client, imp_url, repeat)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
        settings.LUMINIDE_DATA_DIR, settings.ALLOWED_HOSTS = saved
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "trials": n_trials,
        "epochs": n_epochs,
        "data_s": statistics.median(data_t),
        "data_max_s": max(data_t),
        "data_bytes": data_b,
        "summary_s": statistics.median(summ_t),
        "summary_bytes": summ_b,
        "one_curve_s": statistics.median(one_t),
        "one_curve_bytes": one_b,
        "page_s": statistics.median(page_t),
        "page_bytes": page_b,
        "build_s": build_s,
        "importance_first_s": imp_first[0],
        "importance_import_s": import_s,
        "importance_cached_s": statistics.median(imp_cached),
    }
    ok = result["data_s"] < 1.0 and result["data_bytes"] < 2_000_000
    _report(
        f"sweep page, {n_trials} finished trials x {n_epochs} epochs "
        f"(median of {repeat}; target < 1 s and < 2 MB): {'OK' if ok else 'OVER TARGET'}",
        [
            (
                "data endpoint, all curves",
                f"{result['data_s'] * 1000:.0f} ms (max {result['data_max_s'] * 1000:.0f} ms), "
                f"{data_b / 1e6:.2f} MB",
            ),
            (
                "live re-sync, summary only",
                f"{result['summary_s'] * 1000:.0f} ms, {summ_b / 1e6:.2f} MB",
            ),
            (
                "live re-sync, one curve",
                f"{result['one_curve_s'] * 1000:.0f} ms, {one_b / 1e3:.0f} kB",
            ),
            ("HTML page", f"{result['page_s'] * 1000:.0f} ms, {page_b / 1e3:.0f} kB"),
            (
                "parameter importance (fANOVA)",
                f"{imp_first[0]:.2f} s computed (HTTP {imp_status}), "
                f"{result['importance_cached_s'] * 1000:.0f} ms cached, "
                f"+{import_s:.1f} s once per process to import scikit-learn",
            ),
        ],
    )
    return result


# ---------------------------------------------------------------- per-trial overhead

# The "training script": record when it started (bash builtin, no process spawn), then
# write a one-epoch history so the trial completes.
OVERHEAD_SCRIPT = """\
#!/usr/bin/env bash
echo "$EPOCHREALTIME" > started
printf ',epoch,iter,train_loss,val_loss\\n0,0,0,1.0,\\n1,0,-1,,%s\\n' "0.$RANDOM" > history.csv
"""

SETUP = """
import json, os
from django.contrib.auth import get_user_model
from luminide.models import Project
user = get_user_model().objects.create_user("bench", password="bench-password")
p = Project.objects.create(slug="bench", name="bench", owner=user)
p.code_dir.mkdir(parents=True, exist_ok=True)
p.output_dir.mkdir(parents=True, exist_ok=True)
p.input_dir.mkdir(parents=True, exist_ok=True)
files = json.loads(os.environ["LUMINIDE_BENCH_FILES"])
for name, text in files.items():
    (p.code_dir / name).write_text(text)
"""

RESULTS = """
import json
from sweeps.models import Experiment
exp = Experiment.objects.filter(project__slug="bench").order_by("-number").first()
rows = []
for t in exp.trials.order_by("number"):
    started = t.run_dir / "started"
    rows.append({
        "number": t.number,
        "state": t.state,
        "asked": t.created_at.timestamp(),
        "claimed": t.started_at.timestamp() if t.started_at else None,
        "process": float(started.read_text()) if started.exists() else None,
    })
print("RESULTS" + json.dumps(rows))
"""


def bench_trial_overhead(n_trials: int = 10, timeout: float = 300) -> dict:
    """Per-trial overhead, ask -> training process started, on the embedded default.

    Args:
        n_trials: Trials of the sweep (run one at a time, so every trial after the first is
            asked by the event of its predecessor finishing).
        timeout: Give up after this many seconds.

    Returns:
        ``{"median_s", "max_s", "ask_to_claim_s", "claim_to_process_s", "trials"}``.
    """
    root = Path(tempfile.mkdtemp(prefix="lumb-", dir="/tmp"))  # short: unix socket path
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "luminide.settings",
        "LUMINIDE_DATA_DIR": str(root / "data"),
        "LUMINIDE_VAR_DIR": str(root / "var"),
        "REDIS_URL": f"unix://{root / 'var' / 'redis.sock'}",
        "LUMINIDE_PORT": str(free_port()),
        "LUMINIDE_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DATABASE_URL", "LUMINIDE_OPTUNA_STORAGE", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        env.pop(name, None)

    log = root / "launcher.log"
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        env["LUMINIDE_BENCH_FILES"] = json.dumps(
            {
                "sweep.yaml": SWEEP_YAML,
                "config.yaml": CONFIG_YAML,
                "full.sh": OVERHEAD_SCRIPT,
            }
        )
        manage(env, "shell", "-c", SETUP)
        with running_launcher(env, log) as proc:
            # The first trial's overhead must not include the worker's own start-up.
            deadline = time.monotonic() + 120
            while " ready." not in (text := log.read_text(errors="replace")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start:\n{text[-3000:]}")
                time.sleep(0.3)
            manage(
                env,
                "sweep",
                "--project",
                "bench",
                "--trials",
                str(n_trials),
                "--parallel",
                "1",
                "--seed",
                "0",
                "--wait",
                "--timeout",
                str(timeout),
                timeout=timeout + 60,
            )
            out = manage(env, "shell", "-c", RESULTS)
        rows = json.loads(out.split("RESULTS", 1)[1])
    finally:
        shutil.rmtree(root, ignore_errors=True)

    timed = [r for r in rows if r["process"] is not None and r["claimed"] is not None]
    if not timed:
        raise RuntimeError(f"no trial started: {rows}")
    total = [r["process"] - r["asked"] for r in timed]
    to_claim = [r["claimed"] - r["asked"] for r in timed]
    to_process = [r["process"] - r["claimed"] for r in timed]
    result = {
        "trials": len(timed),
        "median_s": statistics.median(total),
        "max_s": max(total),
        "first_s": total[0],
        "ask_to_claim_s": statistics.median(to_claim),
        "claim_to_process_s": statistics.median(to_process),
    }
    ok = result["median_s"] < 1.0
    _report(
        f"per-trial overhead, ask -> training process started, {len(timed)} trials on the "
        f"embedded default (target < 1 s): {'OK' if ok else 'OVER TARGET'}",
        [
            ("median", f"{result['median_s'] * 1000:.0f} ms (max {result['max_s'] * 1000:.0f} ms)"),
            ("  ask -> claimed by the worker", f"{result['ask_to_claim_s'] * 1000:.0f} ms"),
            ("  claimed -> process started", f"{result['claim_to_process_s'] * 1000:.0f} ms"),
        ],
    )
    return result


if __name__ == "__main__":
    which = sys.argv[1:] or ["page", "overhead"]
    if "page" in which:
        bench_sweep_page()
    if "overhead" in which:
        bench_trial_overhead()
