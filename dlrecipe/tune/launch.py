"""``dlrecipe tune --workers N``: KerasTuner's chief and N workers on this machine, supervised (docs/tuning.md).

The ``dlrecipe tune`` process becomes a launcher: it starts one chief (the oracle, ``KERASTUNER_TUNER_ID=chief``)
and N workers (``tuner0`` ... ``tuner{N-1}``) as ``python -m dlrecipe.tune.child SPEC``, which reach the chief
over gRPC on 127.0.0.1 at a port picked free for this search (two chiefs can bind the same port without an
error, so never a fixed one). Each process logs to ``<tune folder>/logs/<id>.log``; ``processes.json`` lists
their ids and pids. The processes are started and stopped with ``dlrecipe.distributed``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

from dlrecipe.distributed import processes
from dlrecipe.io import write_json
from dlrecipe.tune.results import ENDED, PROJECT, SEARCH_RECIPE, TRIAL_RECORD, SearchFailed

MAX_RESTARTS = 3
POLL_S = 0.3


class _Child:
    """One chief or worker process of the search, started again under the same tuner id when it dies."""

    def __init__(self, tuner_id: str, log: Path):
        self.tuner_id, self.log = tuner_id, log
        self.proc: subprocess.Popen | None = None
        self.deaths = 0
        self.ended = False

    def start(self, spec: dict, port: int) -> None:
        env = {"KERASTUNER_TUNER_ID": self.tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port), "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        if self.tuner_id == "chief" and importlib.util.find_spec("jax") is not None:
            # The chief only runs the oracle (no model, no data): Keras's NumPy backend spares it importing
            # TensorFlow, seconds of start-up on every search. That backend imports jax, which the plain
            # install lacks (pip install -e .): there the chief runs on the user's backend.
            env["KERAS_BACKEND"] = "numpy"
        self.proc = processes.start(["-m", "dlrecipe.tune.child", json.dumps(spec)], self.log,
                                    f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {self.tuner_id}", env)

    def tail(self) -> list[str]:
        return processes.tail(self.log, 8)


def _running_trial(project: Path, pid: int) -> str | None:
    """The trial the process ``pid`` was running, from the trial records it writes when a trial begins."""
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

    - A worker that exits 0 has been told by the chief that the search is over.
    - A worker that dies otherwise is reported (exit code or signal, the last lines of its log) and
      started again with the same tuner id: the chief hands it the trial it held, which runs again
      (without it the chief would wait forever). After ``MAX_RESTARTS`` deaths of one id the search stops.
    - When every worker has ended, the chief's oracle has saved everything, and the chief is stopped.
    - The chief dying, or Ctrl-C, stops every process; the search stays resumable.
    - Each worker's TensorFlow gets ``cores // N`` intra- and inter-op threads (at least 1).

    Raises:
        SearchFailed: the chief died, or a worker died more than MAX_RESTARTS times.
        KeyboardInterrupt: after every process has been stopped.
    """
    say = emit or (lambda line: None)
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    project = folder / PROJECT
    port = processes.free_port()
    spec = {"recipe": str(folder / SEARCH_RECIPE), "folder": str(folder), "max_trials": max_trials,
            "max_time": max_time, "threads": processes.threads_per_process(workers)}
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
                how = processes.describe_exit(code)
                if c.deaths > MAX_RESTARTS:
                    raise SearchFailed(f"Worker {c.tuner_id} died {c.deaths} times ({how}){where}; the search stops. "
                                       f"Last lines of {c.log}:\n{lines}\nFix the cause and run the same command "
                                       "to resume.")
                say(f"Worker {c.tuner_id} died ({how}){where}. Last lines of {c.log}:\n{lines}")
                c.start(spec, port)
                record_pids()
                say(f"Restarted {c.tuner_id}" + (f": trial {trial} runs again." if trial else "."))
            code = chief.proc.poll()
            if code is not None and not all(c.ended for c in crew):
                lines = "\n".join(f"    {line}" for line in chief.tail())
                raise SearchFailed(f"The chief (the oracle) died ({processes.describe_exit(code)}). Last lines of "
                                  f"{chief.log}:\n{lines}\nRun the same command to resume.")
        watcher.poll()
        # Every worker was told to stop after its last trial ended, and the oracle saved that trial before
        # answering: nothing is left to write. Without this, the chief would poll 20 s before it exits.
        try:
            chief.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
    finally:
        processes.stop([c.proc for c in children if c.proc is not None], grace=5.0)
