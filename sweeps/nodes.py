"""Compute-node bookkeeping inside a Celery worker: registration and heartbeat.

On ``worker_ready`` the worker registers itself (hostname = the Celery node name, device =
the CUDA device name and memory via ``torch.cuda``, or "CPU") and starts a heartbeat thread.
Every beat also runs :func:`sweeps.actions.do_mark_lost_nodes`, so any live worker notices a
dead one (SIGKILL, power loss) and fails its trials, and re-drives queued runs and running
sweeps when Redis restarted under it (its queued messages are gone). With the prefork pool
these handlers run in the worker's main process, which stays responsive while a child runs a
trial.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

_stop = threading.Event()
_PROBE = (
    "import json, torch\n"
    "if torch.cuda.is_available():\n"
    "    p = torch.cuda.get_device_properties(0)\n"
    "    print(json.dumps({'device': p.name, 'memory': p.total_memory // 2**20,"
    " 'count': torch.cuda.device_count()}))\n"
    "else:\n"
    "    print(json.dumps({'device': 'CPU', 'memory': None, 'count': 0}))\n"
)


def detect_device() -> dict:
    """{"device", "memory" (MiB or None), "count"}; probed in a subprocess so CUDA is never
    initialised in a process that forks pool children."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        log.warning("device probe failed (%s); reporting CPU", exc)
        return {"device": "CPU", "memory": None, "count": 0}


def redis_run_id() -> str:
    """Redis's run id, new at every start of the server."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        return client.info("server")["run_id"]
    finally:
        client.close()


def reconcile_after_redis_restart(last_run_id: str | None) -> str | None:
    """Re-drive queued runs and running sweeps if Redis restarted since the last beat; returns
    the run id now.

    A restarted Redis (the embedded one keeps nothing) has lost the queued ``run_trial`` and
    ``advance_sweep`` messages, and a worker that stayed up never sees ``worker_ready`` again.
    """
    try:
        run_id = redis_run_id()
    except Exception as exc:  # Redis down: Celery reconnects by itself, check next beat
        log.warning("Redis unreachable (%s)", exc)
        return last_run_id
    if last_run_id is not None and run_id != last_run_id:
        log.warning("Redis restarted: re-driving queued runs and running sweeps")
        redrive_queued_work()
    return run_id


def redrive_queued_work() -> None:
    """Enqueue queued runs again and advance running sweeps (every step is idempotent)."""
    from sweeps.actions import do_requeue_single_runs
    from sweeps.sweep import do_reconcile_sweeps

    do_requeue_single_runs()
    do_reconcile_sweeps()


def _heartbeat_loop(hostname: str) -> None:
    from sweeps import actions

    interval = max(1, settings.LUMINIDE_HEARTBEAT_SECONDS)
    info = detect_device()
    run_id = None
    while True:
        try:
            close_old_connections()
            if info is not None:
                actions.do_register_device(
                    hostname,
                    device=info["device"],
                    device_memory_mb=info["memory"],
                    gpu_count=info["count"],
                )
                info = None
            actions.do_heartbeat_node(hostname)
        except Exception:  # the database may be briefly unavailable; beat again later
            log.exception("heartbeat failed")
        # Each check on its own: one that keeps failing must not stop the others.
        try:
            dead = actions.do_fail_trials_of_dead_runners(hostname)
            if dead:
                log.warning("trials whose runner process died: %s", ", ".join(map(str, dead)))
        except Exception:
            log.exception("could not check this worker's runner processes")
        try:
            lost = actions.do_mark_lost_nodes()
            if lost:
                log.warning("nodes lost (no heartbeat): %s", ", ".join(lost))
        except Exception:
            log.exception("could not check for lost nodes")
        try:
            run_id = reconcile_after_redis_restart(run_id)
        except Exception:
            log.exception("could not check for a restarted Redis")
        if _stop.wait(interval):
            return


@worker_ready.connect
def on_worker_ready(sender=None, **kwargs) -> None:
    from sweeps import actions

    hostname = sender.hostname
    actions.do_register_node(hostname, device="CPU")
    lost = actions.do_mark_lost_nodes()
    if lost:
        log.warning("nodes lost (no heartbeat): %s", ", ".join(lost))
    try:
        redrive_queued_work()  # queue messages may be gone (Redis restarted meanwhile)
    except Exception:
        log.exception("could not re-drive queued runs and running sweeps")
    _stop.clear()
    threading.Thread(
        target=_heartbeat_loop, args=(hostname,), daemon=True, name="luminide-heartbeat"
    ).start()


@worker_shutdown.connect
def on_worker_shutdown(sender=None, **kwargs) -> None:
    from sweeps import actions

    _stop.set()
    if sender is not None:
        try:
            actions.do_node_offline(sender.hostname)
        except Exception:
            log.exception("could not mark %s offline", sender.hostname)
