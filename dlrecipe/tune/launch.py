"""``dlrecipe tune --workers N``: KerasTuner's chief and N workers on this machine, supervised.

The ``dlrecipe tune`` process becomes a launcher. It starts, as its own
subprocesses (``python -m dlrecipe.tune_launch SPEC``), one chief (the oracle,
``KERASTUNER_TUNER_ID=chief``) and N workers (``tuner0`` ... ``tuner{N-1}``)
that reach it over gRPC on 127.0.0.1 at a port picked free for this search
(two chiefs can bind the same port without an error, so never a fixed one).
Each process logs to ``<tune folder>/logs/<id>.log``; ``processes.json`` lists
their ids and pids.

Supervision:

- A worker that exits 0 has been told by the chief that the search is over.
- A worker that dies otherwise is reported (exit code or signal, the last lines
  of its log) and started again with the same tuner id: the chief hands it the
  trial it held, which runs again (without it the chief would wait forever).
  After ``MAX_RESTARTS`` deaths of one id the search stops (resumable).
- When every worker has ended, the chief's oracle has saved everything, and
  the chief (which would otherwise poll for 20 s) is stopped.
- The chief dying, or Ctrl-C, stops every process; the search stays resumable.
- Each child watches its parent and ends when the launcher is gone, so a
  killed launcher leaves no orphans that would go on writing the search.
- Each worker's TensorFlow gets ``cores // N`` intra- and inter-op threads
  (at least 1), so N workers share the machine instead of oversubscribing it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from dlrecipe.errors import Stopped

MAX_RESTARTS = 3
POLL_S = 0.3
ENDED = ("COMPLETED", "FAILED", "INVALID")


class SearchFailed(Stopped):
    """The search could not go on (a process failed beyond repair, no trial completed); it stays resumable."""

    prefix = "error: "


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``30m``, ``1.5h``, ``1h30m``.

    Raises:
        RecipeError: anything else, or a duration of 0.
    """
    from dlrecipe.errors import RecipeError
    s = text.strip().lower()
    seconds = None
    if re.fullmatch(r"\d+(\.\d+)?", s):
        seconds = float(s)
    else:
        m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", s)
        if m and s:
            h, mi, se = (float(g) if g else 0.0 for g in m.groups())
            seconds = h * 3600 + mi * 60 + se
    if seconds is None or seconds <= 0:
        raise RecipeError.one("--max-time", f"Received: {text!r}. Expected a positive duration: a number of seconds "
                              "or with units h, m, s, e.g. --max-time 90s, 30m, 2h or 1h30m.")
    return seconds


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def threads_per_worker(workers: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


class _Child:
    def __init__(self, tuner_id: str, log: Path):
        self.tuner_id, self.log = tuner_id, log
        self.proc: subprocess.Popen | None = None
        self.deaths = 0
        self.ended = False

    def start(self, spec: dict, port: int) -> None:
        env = {**os.environ, "KERASTUNER_TUNER_ID": self.tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if self.tuner_id == "chief":
            # The chief only runs the oracle (no model, no data): Keras's NumPy backend spares it importing
            # TensorFlow, seconds of start-up on every search.
            env["KERAS_BACKEND"] = "numpy"
        with open(self.log, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {self.tuner_id}\n".encode())
            log.flush()
            # A session of its own: Ctrl-C in the terminal reaches the launcher, which stops the children.
            self.proc = subprocess.Popen([sys.executable, "-m", "dlrecipe.tune.launch", json.dumps(spec)], env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def tail(self, n: int = 8) -> list[str]:
        try:
            with open(self.log, errors="replace") as f:
                return [line.rstrip() for line in deque(f, maxlen=n)]
        except OSError:
            return []


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _stop(children: list[_Child], grace: float = 5.0) -> None:
    """SIGTERM each running child's process group, then SIGKILL what is left after ``grace`` seconds."""
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for c in running:
        with _quiet():
            os.killpg(c.proc.pid, signal.SIGTERM)
    deadline = time.time() + grace
    for c in running:
        try:
            c.proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            with _quiet():
                os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        return kind is not None and issubclass(kind, ProcessLookupError)


def _running_trial(project: Path, pid: int) -> str | None:
    """The trial the process ``pid`` was running, from the trial records it writes when a trial begins."""
    from dlrecipe.tune.tuner import TRIAL_RECORD
    for record in project.glob(f"trial_*/{TRIAL_RECORD}"):
        try:
            data = json.loads(record.read_text())
            status = json.loads((record.parent / "trial.json").read_text()).get("status")
        except (OSError, ValueError):
            continue
        if data.get("pid") == pid and status not in ENDED:
            return data.get("trial")
    return None


class _TrialWatcher:
    """Reports each trial that the chief marks as ended in its trial.json (one progress line each)."""

    def __init__(self, project: Path, progress):
        self.project, self.progress = project, progress
        self.seen = {tid for tid, status, _ in self._read() if status in ENDED}

    def _read(self):
        for path in sorted(self.project.glob("trial_*/trial.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):  # being written by the chief: read it at the next poll
                continue
            yield data.get("trial_id"), data.get("status"), data

    def poll(self) -> None:
        for tid, status, data in self._read():
            if status in ENDED and tid not in self.seen:
                self.seen.add(tid)
                self.progress.trial_ended(tid, status, data.get("hyperparameters", {}).get("values", {}),
                                          data.get("score"), data.get("message"))


def launch(folder: Path, workers: int, *, max_trials: int | None, max_time: float | None, progress,
           emit: Callable[[str], None] | None) -> None:
    """Run the search in ``folder`` with a chief and ``workers`` worker processes; return when it is over.

    Raises:
        SearchFailed: the chief died, or a worker died more than MAX_RESTARTS times.
        KeyboardInterrupt: after every process has been stopped.
    """
    from dlrecipe.io import write_json
    from dlrecipe.tune.tuner import PROJECT, SEARCH_RECIPE
    say = emit or (lambda line: None)
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    project = folder / PROJECT
    port = free_port()
    spec = {"recipe": str(folder / SEARCH_RECIPE), "folder": str(folder), "max_trials": max_trials,
            "max_time": max_time, "threads": threads_per_worker(workers)}
    chief = _Child("chief", logs / "chief.log")
    crew = [_Child(f"tuner{i}", logs / f"tuner{i}.log") for i in range(workers)]
    children = [chief, *crew]
    watcher = _TrialWatcher(project, progress)

    def record_pids():
        write_json(folder / "processes.json", {"port": port, "launcher": os.getpid(),
                                               **{c.tuner_id: c.proc.pid for c in children if c.proc}})
    try:
        for c in children:
            c.start(spec, port)
        record_pids()
        say(f"Chief on 127.0.0.1:{port} and {workers} worker(s), {spec['threads']} thread(s) each; "
            f"logs in {logs}")
        while not all(c.ended for c in crew):
            time.sleep(POLL_S)
            watcher.poll()
            for c in crew:
                code = None if c.ended else c.proc.poll()
                if code is None:
                    continue
                if code == 0:
                    c.ended = True
                    continue
                c.deaths += 1
                trial = _running_trial(project, c.proc.pid)
                lines = "\n".join(f"    {line}" for line in c.tail())
                where = f" during trial {trial}" if trial else ""
                if c.deaths > MAX_RESTARTS:
                    raise SearchFailed(f"Worker {c.tuner_id} died {c.deaths} times ({_describe_exit(code)}){where}; "
                                      f"the search stops. Last lines of {c.log}:\n{lines}\nFix the cause and run the "
                                      "same command to resume.")
                say(f"Worker {c.tuner_id} died ({_describe_exit(code)}){where}. Last lines of {c.log}:\n{lines}")
                c.start(spec, port)
                record_pids()
                say(f"Restarted {c.tuner_id}" + (f": trial {trial} runs again." if trial else "."))
            code = chief.proc.poll()
            if code is not None and not all(c.ended for c in crew):
                lines = "\n".join(f"    {line}" for line in chief.tail())
                raise SearchFailed(f"The chief (the oracle) died ({_describe_exit(code)}). Last lines of "
                                  f"{chief.log}:\n{lines}\nRun the same command to resume.")
        watcher.poll()
        # Every worker was told to stop after its last trial ended, and the oracle saved that trial before
        # answering: nothing is left to write. Without this, the chief would poll 20 s before it exits.
        try:
            chief.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _stop(children)


def _watch_parent() -> None:
    """End this process when the launcher is gone (its parent changes): no orphan goes on with the search."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)
    threading.Thread(target=watch, daemon=True, name="dlrecipe-parent-watch").start()


def child_main(spec_json: str) -> int:
    """The entry point of a chief or worker process."""
    spec = json.loads(spec_json)
    _watch_parent()
    from dlrecipe.backend import import_keras_quietly, quiet_backend
    from dlrecipe.errors import RecipeError
    quiet_backend()
    import_keras_quietly()
    import keras
    if keras.backend.backend() == "tensorflow":  # before TensorFlow's runtime starts its thread pools
        import tensorflow as tf
        threads = int(spec.get("threads") or 1)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from dlrecipe.tune.tuner import run_child
    try:
        return run_child(spec)
    except RecipeError as e:
        for p in e.problems:
            print(f"error: {p}", flush=True)
        return 2


if __name__ == "__main__":
    code = 1
    try:
        code = child_main(sys.argv[1])
    except BaseException:  # noqa: BLE001 - the log gets the traceback, the launcher the exit code
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # TensorFlow's and gRPC's shutdown add seconds; every file is written already
