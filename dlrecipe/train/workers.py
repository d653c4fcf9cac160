"""Data-parallel training over several processes: ``dlrecipe train RECIPE --workers N`` (see docs/training.md).

Keras 3's ``fit`` does not run under TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585), so
the processes train through Keras's distribution API on JAX: one JAX cluster (CPU collectives over gloo),
``DataParallel`` over every device of every process, each process on its own shard of the data.
The role comes from the environment: without ``DLRECIPE_PROCESS_ID`` this process is the launcher
(``launch``: N local workers, supervised with ``dlrecipe.distributed``); with ``DLRECIPE_PROCESS_ID=i`` and
``DLRECIPE_COORDINATOR=host:port`` (set by the launcher, or by hand on each host) it is worker i, which
joins the cluster (``join``) and trains its shard. Only worker 0 writes the run folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dlrecipe.distributed import processes
from dlrecipe.errors import Problem, RecipeError

PROCESS_ID = "DLRECIPE_PROCESS_ID"
COORDINATOR = "DLRECIPE_COORDINATOR"
RUN_DIR = "DLRECIPE_RUN_DIR"
COMMAND = "DLRECIPE_COMMAND"
CPUS = "DLRECIPE_CPUS"
LOGS = "workers"


@dataclass(frozen=True)
class Process:
    """This process's place in a multi-process run."""

    index: int
    count: int
    coordinator: str

    @property
    def chief(self) -> bool:
        """Worker 0 writes the run folder; the others write nothing."""
        return self.index == 0


def check_request(workers: int, batch_size: int, backend: str) -> None:
    """``--workers N`` can run: the JAX backend and a global batch that N processes share evenly.

    Raises:
        RecipeError: every problem at once, each with its fix.
    """
    problems = []
    if workers < 2:
        problems.append(Problem("--workers", f"Received: --workers {workers}. Expected 2 or more (leave the option "
                                "out to train in this process)."))
    if backend != "jax":
        problems.append(Problem("--workers", f"Received: --workers {workers} on the {backend} backend. Training in "
                                "several processes uses Keras's distribution API on JAX (Keras 3's fit does not run "
                                "under TensorFlow's MultiWorkerMirroredStrategy, keras-team/keras#20585). Run it as "
                                f"`KERAS_BACKEND=jax dlrecipe train ... --workers {workers}`; on one machine with "
                                "several GPUs, runtime.strategy: mirrored trains in one process on TensorFlow."))
    if workers >= 2 and batch_size % workers:
        lower, upper = batch_size // workers * workers, (batch_size // workers + 1) * workers
        fix = f"--set train.batch_size={upper}" + (f" (or {lower})" if lower else "")
        problems.append(Problem("train.batch_size", f"Received: batch_size={batch_size} with --workers {workers}. "
                                "batch_size is the global batch, shared evenly by the workers: it must be a "
                                f"multiple of {workers}. Use {fix}."))
    if problems:
        raise RecipeError(problems)


def from_env(workers: int) -> Process | None:
    """This process's role: a worker when ``DLRECIPE_PROCESS_ID`` is set, else None (the launcher)."""
    raw = os.environ.get(PROCESS_ID)
    if raw is None:
        return None
    coordinator = os.environ.get(COORDINATOR, "")
    if not raw.isdigit() or int(raw) >= workers:
        raise RecipeError.one(PROCESS_ID, f"Received: {PROCESS_ID}={raw!r} with --workers {workers}. Expected an "
                              f"integer from 0 to {workers - 1}, different on every worker.")
    if ":" not in coordinator:
        raise RecipeError.one(COORDINATOR, f"Received: {COORDINATOR}={coordinator!r}. Every worker needs the address "
                              "of worker 0 as host:port, the same on every host, e.g. 10.0.0.1:12345.")
    return Process(int(raw), workers, coordinator)


def command_line() -> list[str]:
    """The user's command line (the launcher's, passed down), for ``environment.json``."""
    raw = os.environ.get(COMMAND)
    return json.loads(raw) if raw else list(sys.argv)


def join(process: Process, batch_size: int) -> None:
    """Pin this worker to its CPUs, then join the JAX cluster (before JAX starts its backend).

    Raises:
        RecipeError: not the JAX backend, or a batch the workers cannot share (see ``check_request``).
    """
    cpus = os.environ.get(CPUS)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    if os.environ.get("KERAS_BACKEND", "jax") == "jax":
        # keras.utils.set_random_seed seeds TensorFlow too whenever it is installed, importing it: about
        # 8 s per worker for nothing, since a worker trains on JAX with NumPy input and never uses it.
        sys.meta_path.insert(0, _NoTensorFlow())
        import jax
        # XLA's CPU client has no collectives of its own: gloo carries the gradient all-reduce.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras
    check_request(process.count, batch_size, keras.backend.backend())
    keras.distribution.initialize(job_addresses=process.coordinator, num_processes=process.count,
                                  process_id=process.index)


class _NoTensorFlow:
    """An import hook that makes TensorFlow look absent in a JAX worker."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (not used by a JAX worker of dlrecipe)", name=name)
        return None


def shard(x: Any, y: Any, process: Process | None) -> tuple[Any, Any]:
    """This worker's share of ``(x, y)``: every N-th example from its index, all shards the same length.

    Equal lengths keep the workers in step (each runs the same number of batches); up to N-1
    examples at the end are left out.
    """
    if process is None or x is None:
        return x, y
    n = len(x) // process.count
    return x[process.index::process.count][:n], y[process.index::process.count][:n]


@dataclass
class Outcome:
    """How a supervised group of workers ended."""

    exit_code: int  # 0, or the launcher's exit code
    message: str


def launch(args: list[str], workers: int, run_dir: Path, command: list[str], *, new_run: bool,
           echo: Callable[[str], None] = print) -> Outcome:
    """Start ``workers`` local processes running ``dlrecipe <args>`` on loopback and supervise them.

    Each worker is pinned to ``cpu_count // N`` CPUs (``DLRECIPE_CPUS``), so N workers on one machine do not
    fight over every core, and logs to ``run_dir/workers/<i>.log``; worker 0's log is echoed. When one
    worker dies the others are stopped and the dead one is reported with its exit code and last log lines;
    Ctrl-C stops all of them.

    Args:
        args: the ``dlrecipe`` arguments each worker runs (``train ... --workers N``).
        run_dir: the run folder (created here for a new run); logs go to ``run_dir/workers/<i>.log``.
        command: the user's command line, recorded in ``environment.json``.
        new_run: a new run folder that holds nothing but logs is removed when the workers refuse
            the recipe (exit code 2), so bad input leaves nothing behind.
    """
    logs = run_dir / LOGS
    made = _missing_root(logs)  # the first folder this call creates: removed again if the recipe is refused
    logs.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    shares = processes.cpu_shares(workers)
    procs: list[subprocess.Popen] = []
    try:
        for i in range(workers):
            env = {"KERAS_BACKEND": "jax", PROCESS_ID: str(i), COORDINATOR: f"127.0.0.1:{port}",
                   RUN_DIR: str(run_dir), COMMAND: json.dumps(command)}
            if shares[i]:
                env[CPUS] = shares[i]
                env["OMP_NUM_THREADS"] = str(len(shares[i].split(",")))
            # In a session of its own: a Ctrl-C in the terminal reaches the launcher only, which stops every
            # worker at once. Workers stopping by themselves at different batches would wait forever on
            # each other's collectives.
            header = f"--- dlrecipe worker {i} of {workers}, {time.strftime('%Y-%m-%d %H:%M:%S')}"
            procs.append(processes.start(["-m", "dlrecipe", *args], logs / f"{i}.log", header, env))
            echo(f"Started worker {i} of {workers} (pid {procs[-1].pid}), log: {logs / f'{i}.log'}")
        outcome = _supervise(procs, logs, run_dir, made if new_run else None, echo)
    except KeyboardInterrupt:
        outcome = Outcome(130, f"Interrupted: all {workers} workers stopped. The run keeps its finished epochs: "
                               f"resume with `KERAS_BACKEND=jax dlrecipe train --resume {run_dir} "
                               f"--workers {workers}`.")
    finally:
        _stop(procs)
    return outcome


def _missing_root(path: Path) -> Path | None:
    path = Path(path).absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _supervise(procs: list[subprocess.Popen], logs: Path, run_dir: Path, made: Path | None,
               echo: Callable[[str], None]) -> Outcome:
    follow = _Follower(logs / "0.log", echo)
    while True:
        follow.poll()
        codes = [p.poll() for p in procs]
        # The cause first: a worker killed by a signal before one that then failed on its broken connection.
        failed = sorted((i for i, c in enumerate(codes) if c not in (None, 0)), key=lambda i: (codes[i] >= 0, i))
        if failed:
            _stop(procs)
            follow.poll()
            return _failure(failed[0], codes[failed[0]], logs, run_dir, made, len(procs))
        if all(c == 0 for c in codes):
            follow.poll()
            return Outcome(0, "")
        time.sleep(0.1)


def _failure(i: int, code: int, logs: Path, run_dir: Path, made: Path | None, workers: int) -> Outcome:
    tail = processes.tail(logs / f"{i}.log", 15)
    if code == 2:  # the recipe or the command was refused, before training: show the problems as they are
        if made is not None and not (run_dir / "recipe.yaml").exists():
            shutil.rmtree(made, ignore_errors=True)
        first = next((k for k, line in enumerate(tail) if _is_problem(line)), 0)
        return Outcome(2, "\n".join(tail[first:]))
    how = processes.describe_exit(code, signal_number=False)
    resume = (f"The run keeps its finished epochs: resume with `KERAS_BACKEND=jax dlrecipe train --resume {run_dir} "
              f"--workers {workers}`.") if (run_dir / "checkpoints" / "state.json").exists() else \
        "No epoch had finished, so there is nothing to resume: train the recipe again."
    lines = "\n".join(f"  | {line}" for line in tail)
    return Outcome(1, f"Worker {i} died ({how}); the other workers were stopped. Last lines of "
                      f"{logs / f'{i}.log'}:\n{lines}\n{resume}")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Kill every running worker's process group at once, and reap them.

    SIGKILL, no grace: JAX's distributed runtime takes SIGTERM as a preemption notice and trains on, and
    a worker left alone waits forever on the collectives of the dead one. Nothing is lost that was
    committed: every file of the run is replaced atomically and state.json, written last, commits an epoch.
    """
    processes.stop(procs, grace=0)


def _is_problem(line: str) -> bool:
    """The lines of a refused recipe (printed by the launcher itself, on stderr)."""
    return line.startswith(("error: ", "warning: ")) or re.match(r"^\d+ problem\(s\)", line) is not None


class _Follower:
    """Echo the lines a log file gains, as they come (worker 0's progress on the launcher's console)."""

    def __init__(self, path: Path, echo: Callable[[str], None]):
        self.path, self.echo, self.offset, self.partial = path, echo, path.stat().st_size if path.exists() else 0, ""

    def poll(self) -> None:
        try:
            with open(self.path, errors="replace") as f:
                f.seek(self.offset)
                text = f.read()
                self.offset = f.tell()
        except OSError:
            return
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            if not line.startswith("--- dlrecipe worker") and not _is_problem(line):
                self.echo(line)
