"""Starting, watching and stopping the local processes of a multi-process command.

``train --workers N`` (``dlrecipe.train.workers``) and ``tune --workers N``
(``dlrecipe.tune.launch``) each supervise their own processes with these:
a free loopback port, CPUs shared out, each process in a session of its own
with its output in a log file, the last lines of that log for an error
message, and stopping them all, Ctrl-C or not. Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it).

    Two servers can bind a fixed port without an error, so every group of processes gets a fresh one.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpus() -> list[int] | None:
    """The CPUs this process may run on, or None where the OS does not say (not Linux)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def cpu_shares(processes: int) -> list[str | None]:
    """The CPUs each of ``processes`` local processes is pinned to: ``cpus // N`` each (None: not pinned).

    Example:
        ``cpu_shares(2)`` on 4 CPUs is ``["0,1", "2,3"]``.
    """
    cpus = _cpus()
    per = len(cpus) // processes if cpus else 0
    if per < 1:
        return [None] * processes
    return [",".join(str(c) for c in cpus[i * per:(i + 1) * per]) for i in range(processes)]


def threads_per_process(processes: int) -> int:
    """``cpus // N`` threads for each of N local processes (at least 1), so they share the machine."""
    cpus = _cpus()
    cores = len(cpus) if cpus is not None else os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def start(argv: list[str], log: Path, header: str, env: dict[str, str]) -> subprocess.Popen:
    """Start ``python argv`` with its output appended to ``log`` after a ``header`` line.

    The process leads a session of its own, so a Ctrl-C in the terminal reaches the supervisor only,
    which then stops every process at once (``stop``). ``env`` is added to this process's environment,
    with ``PYTHONUNBUFFERED=1`` so that the log follows the process as it runs.

    Example:
        ``start(["-m", "dlrecipe", "train", "r.yaml"], Path("0.log"), "--- worker 0", {"X": "1"})``
    """
    with open(log, "ab") as out:
        out.write(f"{header}\n".encode())
        out.flush()
        return subprocess.Popen([sys.executable, *argv], env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    """Stop every running process's group and reap them, with Ctrl-C ignored meanwhile.

    SIGTERM first, SIGKILL for what is left after ``grace`` seconds; ``grace=0`` sends SIGKILL at once.
    A second Ctrl-C must not leave processes running.
    """
    with sigint_ignored():
        running = [p for p in procs if p.poll() is None]
        for p in running:
            _signal_group(p, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.time() + grace
        for p in running:
            try:
                p.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)  # the process leads its own session (``start``)
    except (ProcessLookupError, PermissionError):
        pass


class sigint_ignored:
    """Ignore Ctrl-C inside the block (in the main thread; elsewhere signals cannot be set)."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def describe_exit(code: int, *, signal_number: bool = True) -> str:
    """How a process ended, for an error message.

    Example:
        ``exit code 1``; for -9 ``killed by signal 9 (SIGKILL)``, or ``killed by SIGKILL`` with
        ``signal_number=False``.
    """
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"killed by signal {-code}" if signal_number else f"exit code {code}"
    return f"killed by signal {-code} ({name})" if signal_number else f"killed by {name}"


def tail(log: Path, n: int) -> list[str]:
    """The last ``n`` lines of ``log`` (none when it cannot be read), to quote when its process died."""
    try:
        with open(log, errors="replace") as f:
            return [line.rstrip() for line in deque(f, maxlen=n)]
    except OSError:
        return []


def watch_parent() -> None:
    """End this process when its supervisor is gone (its parent changes): no orphan goes on working."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)
    threading.Thread(target=watch, daemon=True, name="dlrecipe-parent-watch").start()
