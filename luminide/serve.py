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
    """``LUMINIDE_WEB_PROCESSES`` as a positive integer; by default 2 where there are two
    cores (1.2 to 1.8x the API's checkpoint rate measured on 2 cores), else 1."""
    raw = os.environ.get("LUMINIDE_WEB_PROCESSES", str(min(2, os.cpu_count() or 1)))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise SystemExit(f"LUMINIDE_WEB_PROCESSES must be a positive integer, not {raw!r}")
    return n


def serve(host: str, port: int, processes: int) -> int:
    """Serve until a signal or a child's exit; returns the exit code."""
    listener = socket.create_server((host, port), backlog=1024)
    listener.set_inheritable(True)
    fd = listener.fileno()
    daphne = [sys.executable, "-m", "daphne", "--fd", str(fd), "luminide.asgi:application"]
    children = [subprocess.Popen(daphne, pass_fds=(fd,)) for _ in range(processes)]
    listener.close()  # the children hold it

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        code = next(child.returncode for child in children if child.returncode is not None)
        print(f"[serve] a daphne process exited with code {code}; stopping", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
    return code or 0


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
