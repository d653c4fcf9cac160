"""A long search does not keep every trial's traced graphs: TensorFlow's custom-gradient entries stay flat."""

from __future__ import annotations

import numpy as np

LAYERS = [{"type": "Flatten"}, {"type": "Dense", "units": {"int": [4, 64]}, "activation": "relu"},
          {"type": "Dense", "units": 3, "activation": "softmax"}]


def custom_gradients() -> int:
    from tensorflow.python.framework import ops
    return sum(k.startswith("CustomGradient-") for k in ops._gradient_registry._registry)


def test_each_trial_frees_the_graphs_the_trials_before_it_traced(cli, write_recipe, tmp_path, monkeypatch):
    from dlrecipe.tune import hypermodel
    recipe = write_recipe(model={"layers": LAYERS}, train={"epochs": 1},
                          tune={"tuner": "random", "objective": "val_loss", "max_trials": 4})
    fit, after_fit = hypermodel.RecipeHyperModel.fit, []

    def counting(self, hp, model, *args, **kwargs):
        history = fit(self, hp, model, *args, **kwargs)
        after_fit.append(custom_gradients())
        return history
    before = custom_gradients()
    monkeypatch.setattr(hypermodel.RecipeHyperModel, "fit", counting)
    result = cli("tune", recipe, "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert len(after_fit) == 4
    # each fit registers its train and test steps' gradients (so without the release they would pile up:
    # before + 2, + 4, + 6, + 8); each trial's build drops the entries of the trials before it
    assert after_fit[0] > before
    assert after_fit == [after_fit[0]] * 4


def test_release_keeps_what_was_registered_before_and_drops_what_came_after():
    import keras

    from dlrecipe.backend import TracedGraphs
    x, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")

    def fit_once():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, verbose=0)
    fit_once()
    kept = custom_gradients()
    graphs = TracedGraphs()
    fit_once()
    fit_once()
    added = custom_gradients() - kept
    assert added > 0
    assert graphs.release() == added
    assert custom_gradients() == kept
    assert graphs.release() == 0
