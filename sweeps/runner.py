"""Running one trial: the training script as a subprocess, its log and history, live.

:func:`run_trial` is what the Celery task calls. It claims the trial, prepares the run
folder, runs ``full.sh``/``fast.sh`` with bash in its own process group, and until the
process exits: tails ``history.csv`` into the database (:func:`sweeps.actions.do_ingest_history`),
streams the log (stdout and stderr, also written to ``log.txt``), and watches the trial's
state so Cancel (or a lost-worker verdict) stops the process group. Whatever happens, the
trial ends in a finished state.

Run folder layout (ARCHITECTURE §3): every trial, a single run's trial 0 included, runs in
``output/expN/trialK`` beside ``output/expN/code`` (the code snapshot taken when the run was
started) and ``output/expN/input -> ../../input``, so ``../code`` is the snapshot and
``../input`` the data. Its ``config.yaml`` (the sweep's sampled config, or the snapshot's) is
written into the trial folder before the script starts.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from django.db import close_old_connections
from django.db.models import Max

from sweeps import actions
from sweeps.history import read_trial_history
from sweeps.models import HistoryChunk, RunState, Trial
from sweeps.tailer import HistoryTailer

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
STATE_CHECK_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
STDERR_TAIL_LINES = 20
LOG_PREFIX = "[luminide] "
#: The runner finishes only the attempt it claimed, never a trial re-queued for a retry.
RUNNING_ONLY = (RunState.RUNNING,)


class TrialSetupError(Exception):
    """The run cannot start; the message is the trial's failure reason."""


class LogWriter:
    """Appends lines to ``log.txt`` from several threads and batches them for events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "ab")  # noqa: SIM115 (closed in close())
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._pending_offset = self._fh.tell()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.history_error: str | None = None  # why history.csv could not be stored, last

    def write(self, line: str, *, stderr: bool = False) -> None:
        line = line.rstrip("\r\n")
        with self._lock:
            self._fh.write(line.encode("utf-8", errors="replace") + b"\n")
            self._fh.flush()
            self._pending.append(line)
            if stderr:
                self.stderr_tail.append(line)

    def note(self, message: str) -> None:
        """A line from Luminide itself (warnings, state changes)."""
        for line in message.splitlines() or [""]:
            self.write(LOG_PREFIX + line)

    def drain(self) -> tuple[int, int, list[str]]:
        """(offset, cursor, lines) written since the last drain."""
        with self._lock:
            lines, self._pending = self._pending, []
            offset, cursor = self._pending_offset, self._fh.tell()
            self._pending_offset = cursor
        return offset, cursor, lines

    def pump(self, stream, *, stderr: bool) -> threading.Thread:
        def run() -> None:
            for raw in iter(stream.readline, b""):
                self.write(raw.decode("utf-8", errors="replace"), stderr=stderr)
            stream.close()

        thread = threading.Thread(
            target=run, daemon=True, name="log-stderr" if stderr else "log-stdout"
        )
        thread.start()
        return thread

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _symlink(link: Path, target: str) -> None:
    """Create ``link -> target`` unless something is there already (races are fine)."""
    if link.is_symlink() or link.exists():
        return
    with contextlib.suppress(FileExistsError):
        link.symlink_to(target)


def prepare_run_dir(trial: Trial) -> Path:
    """Create the trial's run folder with its links and config (the snapshot is normally
    taken when the run is started; a run queued before it existed takes it now)."""
    experiment = trial.experiment
    try:
        snapshot = actions.snapshot_code(experiment)
    except ValueError as exc:
        raise TrialSetupError(str(exc)) from None
    if snapshot is None:
        raise TrialSetupError(f"the project has no code folder ({experiment.project.code_dir})")
    run_dir = trial.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    _symlink(experiment.output_dir / "input", "../../input")
    config = run_dir / "config.yaml"
    if not config.exists() and (snapshot / "config.yaml").is_file():
        shutil.copy2(snapshot / "config.yaml", config)
    return run_dir


def check_code(trial: Trial, run_dir: Path) -> Path:
    """The script to run; raises TrialSetupError naming what is missing or invalid."""
    snapshot = trial.experiment.output_dir / "code"
    name = "fast.sh" if trial.experiment.is_fast else "full.sh"
    script = snapshot / name
    if not script.is_file():
        raise TrialSetupError(
            f"code/{name} not found: add it to the project's code folder "
            f"({'Fast Training' if name == 'fast.sh' else 'Train'} runs it)"
        )
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise TrialSetupError("code/config.yaml not found: add the hyperparameters file")
    try:
        yaml.safe_load(config.read_text())
    except UnicodeDecodeError:
        raise TrialSetupError("config.yaml: not UTF-8 text (save it as UTF-8)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TrialSetupError(f"config.yaml{where}: invalid YAML: {problem}") from None
    text = script.read_text(errors="replace")
    if "train.py" in text and not (snapshot / "train.py").is_file():
        raise TrialSetupError(f"code/train.py not found ({name} runs it)")
    return script


def script_env() -> dict[str, str]:
    """This process's environment for a project script: ``python`` in ``full.sh``/``fast.sh``
    is this interpreter's (the venv's), whatever PATH was."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_full_sh(folder: Path, log: Path) -> int:
    """Run the code's ``full.sh`` in ``folder`` (which has ``../code`` and ``../input`` beside
    it), outside any sweep, with its output in ``log``; its exit status."""
    with open(log, "wb") as out:
        return subprocess.call(
            ["bash", "../code/full.sh"], cwd=folder, stdout=out, stderr=out, env=script_env()
        )


def _env(trial: Trial, run_dir: Path) -> dict[str, str]:
    env = script_env()
    env["TRIAL"] = str(trial.number)
    env["PYTHONUNBUFFERED"] = "1"
    env["LUMINIDE_EXPERIMENT"] = trial.experiment.name
    env["LUMINIDE_RUN_DIR"] = str(run_dir)
    for name in ("DJANGO_SETTINGS_MODULE", "LUMINIDE_HEARTBEAT_SECONDS"):
        env.pop(name, None)
    return env


def stop_process_group(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # The leader exited; children may linger in the group: kill them too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def end_leftovers(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """The script exited: stop what it left running in its process group (a data loader,
    TensorBoard, a stray ``&``), which would hold on to the GPU the next trial needs."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return  # the group is empty
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)


_interrupted = threading.Event()


def _on_sigterm(signum, frame) -> None:
    _interrupted.set()


def _in_pool_child() -> bool:
    try:
        from billiard.process import current_process
    except ImportError:
        return False
    return current_process().name != "MainProcess"


def _divergence(trial: Trial) -> str:
    """Why a run that exited 0 still failed: it ended diverged. Its last epoch's val loss is
    NaN/inf, or its last history row's loss is (training stopped on it); a NaN written to
    history.csv is read as inf. Its best val loss is from before, its model meaningless: a
    sweep must not rank it by that best. A run that recovered from a bad step is fine."""
    last_epoch = trial.epochs.order_by("-epoch").values_list("epoch", "val_loss").first()
    if last_epoch and last_epoch[1] is not None and not math.isfinite(last_epoch[1]):
        return f"diverged: the val loss of its last epoch ({last_epoch[0]}) is not finite"
    last = HistoryChunk.objects.filter(trial=trial).aggregate(last=Max("last_epoch"))["last"]
    rows = read_trial_history(trial, min_epoch=last) if last is not None else None
    if not rows:
        return ""
    for name in ("train_loss", "val_loss", "epoch_val_loss"):
        if np.isinf(getattr(rows, name)[-1]):
            return f"diverged: the {name} of the last row of history.csv is not finite"
    return ""


def run_trial(trial_id: int, *, hostname: str = "", task_id: str = "") -> str | None:
    """Claim and run one trial to a finished state; returns that state (None: not claimed).

    SIGTERM while it runs (the launcher stopping, a pool child being terminated) stops the
    training process group and fails the trial as interrupted; the signal is then
    delivered again to the previous handler.
    """
    trial = actions.do_claim_trial(trial_id, hostname=hostname, task_id=task_id)
    if trial is None:
        log.info("trial %s is not queued any more; nothing to do", trial_id)
        return None
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _interrupted.clear()
    try:
        _run_claimed(trial)
    except BaseException as exc:
        # Never leave a trial RUNNING, whatever went wrong here (including SystemExit).
        close_old_connections()
        actions.do_finish_trial(
            trial, RunState.FAILED, reason=f"internal error: {exc!r}", from_states=RUNNING_ONLY
        )
        if not isinstance(exc, Exception):
            raise
        log.exception("trial %s failed inside the runner", trial)
    finally:
        actions.do_release_node(trial.node_id)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            if _interrupted.is_set() and not _in_pool_child():
                # Solo pool / plain process: let the worker's own handler shut it down. A
                # prefork child just returns; its parent is already shutting down.
                os.kill(os.getpid(), signal.SIGTERM)
    # None when the experiment was deleted while it ran.
    return Trial.objects.filter(pk=trial.pk).values_list("state", flat=True).first()


def _run_claimed(trial: Trial) -> None:
    try:
        run_dir = prepare_run_dir(trial)
    except (TrialSetupError, OSError) as exc:
        actions.do_finish_trial(trial, RunState.FAILED, reason=str(exc), from_states=RUNNING_ONLY)
        return
    logw = LogWriter(run_dir / "log.txt")
    try:
        _run_process(trial, run_dir, logw)
    finally:
        offset, cursor, lines = logw.drain()
        actions.do_publish_log_lines(trial, offset=offset, cursor=cursor, lines=lines)
        logw.close()


def _run_process(trial: Trial, run_dir: Path, logw: LogWriter) -> None:
    try:
        script = check_code(trial, run_dir)
    except TrialSetupError as exc:
        logw.note(f"cannot start: {exc}")
        actions.do_finish_trial(trial, RunState.FAILED, reason=str(exc), from_states=RUNNING_ONLY)
        return
    history = run_dir / "history.csv"
    if history.exists() and trial.rows_stored == 0:
        history.unlink()  # left over from an earlier attempt of this run folder
    logw.note(f"{trial.experiment.name} trial {trial.number}: bash {script} (cwd {run_dir})")
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=run_dir,
        env=_env(trial, run_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # own process group: Cancel stops the whole tree
    )
    Trial.objects.filter(pk=trial.pk).update(pid=proc.pid)
    pumps = [logw.pump(proc.stdout, stderr=False), logw.pump(proc.stderr, stderr=True)]
    tailer = HistoryTailer(history)
    parent = os.getppid()
    stopped_for: str | None = None
    next_check = time.monotonic() + STATE_CHECK_SECONDS
    try:
        while True:
            exited = proc.poll() is not None
            if exited:
                end_leftovers(proc)  # before the pumps: a leftover may hold the pipes open
                for t in pumps:
                    t.join(timeout=5)
            _ingest(trial, tailer, logw, final=exited)
            offset, cursor, lines = logw.drain()
            actions.do_publish_log_lines(trial, offset=offset, cursor=cursor, lines=lines)
            if exited:
                break
            if _interrupted.is_set():
                stopped_for = "interrupted"
            elif time.monotonic() >= next_check:
                next_check = time.monotonic() + STATE_CHECK_SECONDS
                state = Trial.objects.filter(pk=trial.pk).values_list("state", flat=True).first()
                if state != RunState.RUNNING:
                    stopped_for = state or "deleted"
                elif os.getppid() != parent:
                    stopped_for = "orphaned"
            if stopped_for:
                logw.note(f"stopping the training process ({stopped_for})")
                stop_process_group(proc)
                for t in pumps:
                    t.join(timeout=5)
                if stopped_for != "deleted":
                    _ingest(trial, tailer, logw, final=True)
                break
            time.sleep(POLL_SECONDS)
    except BaseException:
        stop_process_group(proc, grace=1.0)
        raise
    finally:
        Trial.objects.filter(pk=trial.pk).update(pid=None)
    _finish(trial, proc.returncode, stopped_for, tailer, logw)


def _ingest(trial: Trial, tailer: HistoryTailer, logw: LogWriter, *, final: bool) -> None:
    while True:
        chunk = tailer.read(final=final)
        if chunk is None:
            return
        if tailer.restarted:
            logw.note(
                "history.csv was rewritten with a new header or changed rows: reading the"
                f" rows after the {tailer.data_lines} already stored"
            )
            tailer.restarted = False
        try:
            result = actions.do_ingest_history(trial, chunk.text, line_offset=chunk.line_offset)
        except Trial.DoesNotExist:
            return  # deleted meanwhile; the loop notices and stops the process
        except ValueError as exc:
            logw.note(f"warning: history.csv not stored: {exc}")
            logw.history_error = str(exc)
            continue
        for warning in result.warnings:
            logw.note(f"warning: skipped a malformed row: {warning}")


def _finish(
    trial: Trial, rc: int | None, stopped_for: str | None, tailer: HistoryTailer, logw: LogWriter
) -> None:
    if stopped_for in ("orphaned", "interrupted"):
        reason = {
            "orphaned": "lost worker: the worker process died while the trial ran",
            # A sweep retries a trial whose reason starts with "lost worker" (a restart).
            "interrupted": "lost worker: the worker was stopped while the trial ran",
        }[stopped_for]
        actions.do_finish_trial(trial, RunState.FAILED, reason=reason, from_states=RUNNING_ONLY)
        logw.note(reason)
        return
    if stopped_for == "deleted":
        logw.note("the experiment was deleted; training stopped")
        return
    if stopped_for:
        trial.refresh_from_db()
        logw.note(f"trial {trial.state}: {trial.failure_reason or 'stopped'}")
        return
    tail = "\n".join(logw.stderr_tail)
    # A script that exits with an error prints it last (a traceback ends with it): that
    # line goes first, where the failure banner and a sweep's "every trial failed" summary
    # show it; library warnings come before it. A killed one's last line is just output.
    last = next((line.strip() for line in reversed(logw.stderr_tail) if line.strip()), "")
    if rc == 0 and not tailer.exists:
        reason = (
            "the script finished without writing history.csv (train.py must append it in "
            "the run folder)"
        )
        state = RunState.FAILED
    elif rc == 0 and not Trial.objects.filter(pk=trial.pk, rows_stored__gt=0).exists():
        # Exit code 0 but nothing could be read: not a success the tracking list can show.
        reason = "history.csv: no row could be stored" + (
            f": {logw.history_error}" if logw.history_error else " (see the warnings in the log)"
        )
        state = RunState.FAILED
    elif rc == 0 and (diverged := _divergence(trial)):
        state, reason = RunState.FAILED, diverged
    elif rc == 0:
        state, reason = RunState.COMPLETE, ""
    elif rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        state, reason = RunState.FAILED, f"killed by signal {name}" + (f"\n{tail}" if tail else "")
    else:
        error = f": {last}\n{tail}" if last else ""
        state, reason = RunState.FAILED, f"exit code {rc}{error}"
    if actions.do_finish_trial(trial, state, reason=reason, from_states=RUNNING_ONLY):
        logw.note(f"trial {state}" + (f": {reason.splitlines()[0]}" if reason else ""))
