"""KerasTuner's four oracles with what a dlrecipe search adds: the ``--max-time`` budget and safe resumes.

``BudgetOracle`` is mixed into each of KerasTuner's oracle classes (``ORACLES``, one per ``tune.tuner``).
It works in the single process and in the chief, where workers reach the oracle over gRPC: it refuses new
trials once the budget is spent (and marks it), saves the oracle after every ended trial, reports ended
trials, and never runs a trial again that its ``trial.json`` says has completed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import keras_tuner as kt

from dlrecipe.io import write_text
from dlrecipe.tune.results import BUDGET_MARK


class BudgetOracle:
    """The ``create_trial``/``end_trial``/``set_state`` of a dlrecipe search, before the oracle's own.

    Mixed in before a KerasTuner oracle class (``class X(BudgetOracle, kt.oracles.RandomSearchOracle)``).
    Until ``watch`` is called it adds no budget and reports nothing.
    """

    budget_folder: Path | None = None
    max_time: float | None = None
    on_end: Callable | None = None
    started: float | None = None

    def watch(self, folder: Path, max_time: float | None, on_end: Callable | None) -> None:
        """Refuse new trials ``max_time`` seconds after the first one (marked in ``folder``); ``on_end(trial)``.

        A running trial finishes (stopped half-way, it would be scored on fewer epochs than the others).
        The clock starts when the first trial of this run starts, so start-up (imports, data, starting
        worker processes) is not counted and at least one trial runs.
        """
        self.budget_folder, self.max_time, self.on_end, self.started = folder, max_time, on_end, None

    @kt.synchronized
    def create_trial(self, tuner_id):
        """KerasTuner's next trial, or a STOPPED one once the budget is spent.

        A tuner that already holds a trial (a restarted worker) gets it again: the running trial finishes.
        """
        if self.started is None:
            self.started = time.time()
        if self.max_time is not None and time.time() - self.started >= self.max_time and \
                tuner_id not in self.ongoing_trials:
            write_text(self.budget_folder / BUDGET_MARK, f"{time.time()}\n")
            self.tuner_ids.discard(tuner_id)  # as KerasTuner does when it stops a tuner: lets the chief exit
            return kt.engine.trial.Trial(self.get_space(), trial_id="stopped",
                                         status=kt.engine.trial.TrialStatus.STOPPED)
        return super().create_trial(tuner_id)

    @kt.synchronized
    def end_trial(self, trial):
        """KerasTuner's end of a trial, then the oracle saved again and the trial reported to ``on_end``."""
        result = super().end_trial(trial)
        # KerasTuner saves the oracle before it drops the trial from its ongoing trials, and a chief never
        # saves it again once its workers are told to stop: the saved oracle would still list the trial as
        # running, and a resumed or extended search would run it again.
        self.save()
        if self.on_end is not None:
            self.on_end(self.trials[trial.trial_id])
        return result

    def set_state(self, state):
        """The oracle reloaded from ``oracle.json``, less the trials that completed after it was saved.

        A trial whose trial.json says COMPLETED has ended, whatever the oracle's file says (a process
        stopped between the two writes): reloading must not queue it to run again. ``reload`` reads every
        trial.json before this state, and queues the state's running trials to run again after it.
        """
        def completed(trial_id) -> bool:
            return trial_id in self.trials and str(self.trials[trial_id].status) == "COMPLETED"

        state = {**state, "retry_queue": [t for t in state["retry_queue"] if not completed(t)],
                 "ongoing_trials": {k: t for k, t in state["ongoing_trials"].items() if not completed(t)}}
        super().set_state(state)


class RandomSearchOracle(BudgetOracle, kt.oracles.RandomSearchOracle):
    """KerasTuner's random search, within dlrecipe's budget."""


class GridSearchOracle(BudgetOracle, kt.oracles.GridSearchOracle):
    """KerasTuner's grid search, within dlrecipe's budget."""


class BayesianOptimizationOracle(BudgetOracle, kt.oracles.BayesianOptimizationOracle):
    """KerasTuner's Bayesian optimization, within dlrecipe's budget."""


class HyperbandOracle(BudgetOracle, kt.oracles.HyperbandOracle):
    """KerasTuner's Hyperband, within dlrecipe's budget."""


ORACLES = {"random": RandomSearchOracle, "grid": GridSearchOracle, "bayesian": BayesianOptimizationOracle,
           "hyperband": HyperbandOracle}
