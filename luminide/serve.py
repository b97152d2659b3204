"""``python -m luminide.serve``: daphne in one or more processes on one listening socket.

Daphne serves from a single process (one Python thread at a time runs Django's sync views),
so this opens the socket once and starts ``--processes`` daphne children on it (``--fd``);
the kernel spreads connections over them. HTTP and websockets work the same in each: live
events go through the Redis channel layer, not through process memory.

SIGTERM/SIGINT stop every child. Used by ``make run`` (``LUMINIDE_WEB_PROCESSES``, default 2
on two or more cores) and by the Docker image's ``web`` role.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def web_processes() -> int:
    """``LUMINIDE_WEB_PROCESSES`` as a positive integer; by default 2 where the process may
    use two cores (1.2 to 1.8x the API's checkpoint rate measured on 2 cores), else 1."""
    cores = len(os.sched_getaffinity(0))  # respects a container's CPU set
    raw = os.environ.get("LUMINIDE_WEB_PROCESSES", str(min(2, cores)))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise SystemExit(f"LUMINIDE_WEB_PROCESSES must be a positive integer, not {raw!r}")
    return n


def _daphne_commands(host: str, port: int, processes: int) -> tuple[list[list[str]], int | None]:
    """The daphne command lines and the shared listening socket's fd (None: daphne binds)."""
    app = "luminide.asgi:application"
    if ":" in host:
        # daphne's fd endpoint adopts the socket as IPv4 only: one process binding itself.
        if processes > 1:
            raise SystemExit(
                f"LUMINIDE_WEB_PROCESSES={processes} needs an IPv4 host; {host!r} is IPv6 "
                "(use 1 process, or an IPv4 address such as 0.0.0.0)"
            )
        return [[sys.executable, "-m", "daphne", "-b", host, "-p", str(port), app]], None
    listener = socket.create_server((host, port), backlog=1024)
    listener.set_inheritable(True)
    fd = listener.detach()  # closed once the children hold it
    return [[sys.executable, "-m", "daphne", "--fd", str(fd), app]] * processes, fd


def serve(host: str, port: int, processes: int) -> int:
    """Serve until a signal or a child's exit; returns the exit code (1: a child died)."""

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    commands, fd = _daphne_commands(host, port, processes)
    children: list[subprocess.Popen] = []
    code = 0
    try:
        for command in commands:
            children.append(subprocess.Popen(command, pass_fds=() if fd is None else (fd,)))
        if fd is not None:
            os.close(fd)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        code = 1
        print("[serve] a daphne process exited; stopping the others", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("LUMINIDE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("LUMINIDE_PORT", "8000")))
    parser.add_argument("--processes", type=int, default=None, help="LUMINIDE_WEB_PROCESSES")
    args = parser.parse_args()
    processes = args.processes if args.processes is not None else web_processes()
    if processes < 1:
        parser.error("--processes must be at least 1")
    sys.exit(serve(args.host, args.port, processes))


if __name__ == "__main__":
    main()
