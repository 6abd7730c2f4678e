"""`hashbank serve`: uvicorn workers that each own a SO_REUSEPORT listening socket.

Why not uvicorn's own ``--workers``: its workers share one listening socket, and whichever worker
is awake accepts; with keep-alive clients (every platform's upload pipeline) one worker ends up
holding nearly every connection while the other idles (31 of 32 in the service benchmark). With a
socket per worker bound to the same port, the kernel spreads new connections across workers.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import signal
import socket
import sys
import time
from typing import Any

APP = "hashbank.service.app:create_app"


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus hashbank's own messages (index loaded, audit writes failing)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["hashbank"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _options(access_log: bool) -> dict[str, Any]:
    from hashbank.service.lane import LaneProtocol

    # No "server: uvicorn" header: it tells a caller nothing it needs, and is one more header a response.
    return {"factory": True, "access_log": access_log, "log_config": log_config(), "timeout_keep_alive": 30,
            "server_header": False, "http": LaneProtocol}


def _listen(host: str, port: int, *, share: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, access_log: bool) -> None:
    import uvicorn

    sock = _listen(host, port)
    uvicorn.Server(uvicorn.Config(APP, **_options(access_log))).run(sockets=[sock])


def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Run the API until SIGINT/SIGTERM; a worker that dies is replaced."""
    import uvicorn

    if workers == 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, host=host, port=port, workers=workers, **_options(access_log))
        return
    # Fail here, once, if anything listens on the port already: bound without SO_REUSEPORT, so an
    # earlier server still running is refused rather than silently sharing the traffic.
    try:
        _listen(host, port, share=False).close()
    except OSError as exc:
        raise SystemExit(f"hashbank serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(host, port, access_log), name="hashbank-worker")
        process.start()
        return process

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start() for _ in range(workers)]
    print(f"hashbank: {workers} workers on http://{host}:{port} (one SO_REUSEPORT socket each)", file=sys.stderr)
    try:
        while not stopping:
            time.sleep(0.25)
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    print(f"hashbank: worker {process.pid} exited ({process.exitcode}); starting another",
                          file=sys.stderr)
                    processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive() and process.pid:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()  # uvicorn shuts down gracefully: audit rows are flushed
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
