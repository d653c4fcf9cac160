"""MLflow tracking for ``train --mlflow`` and ``tune --mlflow`` (docs/training.md#mlflow).

A run logs the resolved recipe as flattened params (dotted keys), every epoch's metrics through MLflow's own
Keras callback, and the run folder's model, plots, history and recipe as artifacts. The store is
``MLFLOW_TRACKING_URI`` or, by default, an embedded sqlite store under the runs folder (``runs/mlflow.db``,
artifacts in ``runs/mlartifacts``): MLflow 3 refuses the old ``mlruns/`` file store. A search is a parent
run; each trial a nested run, also from the worker processes of ``tune --workers`` (they inherit the
parent's id and store through the environment).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, Iterator

from dlrecipe import runs
from dlrecipe.errors import RecipeError

INSTALL = "pip install -e '.[mlflow]'"
PARENT_ENV = "DLRECIPE_MLFLOW_PARENT"  # the search's run id, for the trials of worker processes
URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT = "dlrecipe"
MAX_PARAM = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH (MLflow 2.x and 3.x)
RUN_ARTIFACTS = (runs.RECIPE, runs.HISTORY, runs.MODEL, runs.METRICS, runs.PREPROCESSING, runs.ENVIRONMENT)


def require() -> None:
    """MLflow is importable (with its Keras callback), or a recipe error naming the install command."""
    try:
        import mlflow  # noqa: F401
        import mlflow.keras  # noqa: F401
    except ImportError as e:
        raise RecipeError.one("--mlflow", f"MLflow is not installed ({e}). Install it with: {INSTALL}") from None


def tracking_uri(out: Path) -> str:
    """``MLFLOW_TRACKING_URI``, or the embedded store ``<out>/mlflow.db``."""
    return os.environ.get(URI_ENV) or f"sqlite:///{(Path(out) / 'mlflow.db').resolve()}"


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Dotted params: ``{"train": {"epochs": 2}, "model": {"layers": [{...}]}}`` -> ``train.epochs``,
    ``model.layers.0.type`` (MLflow's keys take no brackets); values as text, cut to MLflow's length limit."""
    out: dict[str, str] = {}
    if isinstance(data, dict) and data:
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and data:
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}.{i}"))
    elif prefix:
        text = str(data)
        out[prefix] = text if len(text) <= MAX_PARAM else text[:MAX_PARAM - 3] + "..."
    return out


def _client(out: Path):
    """The mlflow module, pointed at the store; the experiment is made with its artifacts beside a local store."""
    import mlflow
    uri = tracking_uri(out)
    local = not os.environ.get(URI_ENV)  # read first: set_tracking_uri also sets the variable
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = (Path(out) / "mlartifacts").resolve().as_uri() if local else None
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def callback(tracked: "Tracked | None" = None):
    """MLflow's Keras callback, logging each epoch's metrics at step = the epoch number (as in history.csv).

    With ``tracked``, the MLflow run starts when training begins: bad input that stops a run before its
    first epoch leaves nothing in the store.
    """
    from mlflow.keras import MlflowCallback

    class EpochCallback(MlflowCallback):
        def on_train_begin(self, logs=None):
            if tracked is not None:
                tracked.start()
            super().on_train_begin(logs)

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch + 1, logs)

        def on_test_end(self, logs=None):  # the val_ metrics come with the epoch's logs
            return

    return EpochCallback()


def _log_params(mlflow, params: dict[str, str]) -> None:
    # a recipe path's [i] becomes .i: MLflow's keys take no brackets
    items = [(re.sub(r"\[(\d+)\]", r".\1", k), v) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        mlflow.log_params(dict(items[i:i + 100]))


def log_run_folder(mlflow, run_dir: Path) -> list[str]:
    """The run folder's files (recipe, history, model, metrics) and plots/ as artifacts; their names."""
    logged = []
    for name in RUN_ARTIFACTS:
        if (run_dir / name).is_file():
            mlflow.log_artifact(str(run_dir / name))
            logged.append(name)
    if (run_dir / runs.PLOTS).is_dir():
        mlflow.log_artifacts(str(run_dir / runs.PLOTS), artifact_path=runs.PLOTS)
        logged.append(runs.PLOTS)
    return logged


def log_test_metrics(metrics: dict) -> None:
    """The test split's scalar metrics (``train --evaluate``) as ``test_<name>`` in the active run."""
    import mlflow
    scalars = {f"test_{k}": float(v) for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n_test"}
    if scalars:
        mlflow.log_metrics(scalars)


SEARCH_ARTIFACTS = ("trials.csv", "objective.png", "best.yaml")


class Tracked:
    """One MLflow run of a training or a search, started once the work begins (``start``).

    ``folder`` (the run folder, or the search folder) is logged when the run ends; a search's run id and
    store go into the environment, where its trials (``TrialRuns``), in any process, find them.
    """

    def __init__(self, loaded: Any, out: Path, search: bool = False):
        self.loaded, self.out, self.search = loaded, Path(out), search
        self.run_id: str | None = None
        self.folder: Path | None = None
        self.callbacks = () if search else (callback(self),)
        self._saved_env = {k: os.environ.get(k) for k in (PARENT_ENV, URI_ENV)}  # restored by ``end``

    def start(self) -> None:
        if self.run_id is not None:
            return
        mlflow = _client(self.out)
        name = self.loaded.recipe.name + (" search" if self.search else "")
        run = mlflow.start_run(run_name=name)
        self.run_id = run.info.run_id
        _log_params(mlflow, flatten(self.loaded.resolved()))
        mlflow.set_tag("dlrecipe.recipe", self.loaded.recipe.name)
        if self.search:
            _log_params(mlflow, {f"space.{p}": str(sp)[:MAX_PARAM] for p, sp in self.loaded.spaces.items()})
            os.environ.update({PARENT_ENV: self.run_id, URI_ENV: tracking_uri(self.out)})

    def end(self, status: str = "FINISHED") -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self.run_id is None:
            return
        import mlflow
        if self.folder is not None:
            mlflow.set_tag("dlrecipe.folder", str(self.folder))
            if self.search:
                for name in SEARCH_ARTIFACTS:
                    if (self.folder / name).is_file():
                        mlflow.log_artifact(str(self.folder / name))
            else:
                log_run_folder(mlflow, self.folder)
        mlflow.end_run(status)
        mlflow.flush_async_logging()


@contextlib.contextmanager
def tracked_run(loaded: Any, out: Path, search: bool = False) -> Iterator[Tracked]:
    """A ``Tracked`` run around a training or a search: ended FINISHED, or KILLED/FAILED with what it kept."""
    tracked = Tracked(loaded, out, search)
    try:
        yield tracked
    except BaseException as e:
        kept = getattr(e, "run_dir", None)  # a stopped training keeps its epochs
        tracked.folder = Path(kept) if kept is not None else tracked.folder
        tracked.end("KILLED" if isinstance(e, KeyboardInterrupt) or getattr(e, "exit_code", 0) == 130 else "FAILED")
        raise
    tracked.end()


class TrialRuns:
    """Nested MLflow runs, one per trial, under the search's run named in the environment (``Tracked``)."""

    def __init__(self, parent: str, uri: str):
        self.parent, self.uri = parent, uri
        self.active = None

    @classmethod
    def from_env(cls) -> "TrialRuns | None":
        parent = os.environ.get(PARENT_ENV)
        return cls(parent, os.environ[URI_ENV]) if parent and os.environ.get(URI_ENV) else None

    def begin(self, trial_id: str, trial_recipe: Any) -> None:
        import mlflow
        mlflow.set_tracking_uri(self.uri)
        experiment = mlflow.get_run(self.parent).info.experiment_id
        self.active = mlflow.start_run(run_name=f"trial {trial_id}", experiment_id=experiment,
                                       parent_run_id=self.parent, nested=True)
        _log_params(mlflow, flatten(trial_recipe.resolved()))
        mlflow.set_tag("dlrecipe.trial", trial_id)

    def callbacks(self) -> list:
        return [callback()] if self.active is not None else []

    def end(self, status: str, score: Any = None) -> None:
        if self.active is None:
            return
        import mlflow
        if score is not None:
            mlflow.log_metric("objective", float(score))
        mlflow.end_run("FINISHED" if status == "COMPLETED" else "FAILED")
        mlflow.flush_async_logging()
        self.active = None
