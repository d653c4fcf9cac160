"""A search stopped in its second trial and resumed scores every trial as the search that was never stopped."""

from __future__ import annotations

import csv
from pathlib import Path

OBJECTIVE = "objective"
LAYERS = [{"type": "Flatten"}, {"type": "Dense", "units": {"choice": [4, 8, 16]}, "activation": "relu"},
          {"type": "Dropout", "rate": 0.2}, {"type": "Dense", "units": 3, "activation": "softmax"}]


def scores(folder: Path) -> list[tuple[str, ...]]:
    with open(folder / "trials.csv") as f:
        return [(r["trial"], r["status"], r[OBJECTIVE], r["model.layers[1].units"]) for r in csv.DictReader(f)]


def test_a_search_stopped_in_trial_2_and_resumed_scores_as_the_uninterrupted_one(cli, write_recipe, tmp_path,
                                                                                 monkeypatch):
    from dlrecipe.tune import hypermodel
    recipe = write_recipe(model={"layers": LAYERS}, runtime={"deterministic": True},
                          data={"augment": [{"type": "RandomFlip", "mode": "horizontal"}]},
                          train={"epochs": 2, "metrics": ["accuracy"]},
                          tune={"tuner": "random", "objective": "val_loss", "max_trials": 3})
    whole = cli("tune", recipe, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.stderr
    expected = scores(tmp_path / "whole" / "tiny" / "tune")
    assert len(expected) == 3 and {s for _, s, _, _ in expected} == {"COMPLETED"}

    fit, calls = hypermodel.RecipeHyperModel.fit, []

    def stop_in_the_second_trial(self, hp, model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C as the SIGINT handler flags it: trial 2 is left unfinished
            self.stopper.interrupted = True
        return fit(self, hp, model, *args, **kwargs)

    out = tmp_path / "stopped"
    with monkeypatch.context() as m:
        m.setattr(hypermodel.RecipeHyperModel, "fit", stop_in_the_second_trial)
        stopped = cli("tune", recipe, "--out", out)
    assert stopped.exit_code == 130, stopped.stderr
    finished = sorted(p.parent.name for p in (out / "tiny" / "tune").glob("keras_tuner/trial_*/trial.json")
                      if '"COMPLETED"' in p.read_text())
    assert finished == ["trial_0"]
    resumed = cli("tune", recipe, "--out", out)
    assert resumed.exit_code == 0, resumed.stderr
    assert scores(out / "tiny" / "tune") == expected
