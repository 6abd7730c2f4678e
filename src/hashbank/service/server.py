"""`hashbank serve`: a parent process that accepts connections and hands each to one of N uvicorn
workers (``dispatch.py`` says why and how), and replaces a worker that dies.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import signal
import socket
import sys
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


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(channel: socket.socket, access_log: bool) -> None:
    import uvicorn

    from hashbank.service.dispatch import HandedServer

    HandedServer(uvicorn.Config(APP, **_options(access_log)), channel).run()


def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Run the API until SIGINT/SIGTERM; a worker that dies is replaced."""
    import uvicorn

    if workers == 1:
        uvicorn.run(APP, host=host, port=port, **_options(access_log))
        return
    from hashbank.service.dispatch import Dispatcher

    try:
        listener = _listen(host, port)
    except OSError as exc:
        raise SystemExit(f"hashbank serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    dispatcher = Dispatcher(listener, workers)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start(slot: int) -> multiprocessing.process.BaseProcess:
        channel = dispatcher.attach(slot)
        process = context.Process(target=_worker, args=(channel, access_log), name="hashbank-worker")
        process.start()
        channel.close()  # the worker has its own copy
        return process

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start(slot) for slot in range(workers)]
    print(f"hashbank: {workers} workers on http://{host}:{port}", file=sys.stderr)
    try:
        while not stopping:
            dispatcher.poll(0.25)
            for slot, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    print(f"hashbank: worker {process.pid} exited ({process.exitcode}); starting another",
                          file=sys.stderr)
                    processes[slot] = start(slot)
    finally:
        dispatcher.close()
        for process in processes:
            if process.is_alive() and process.pid:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()  # uvicorn shuts down gracefully: audit rows are flushed
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
