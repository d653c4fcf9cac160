"""What a streamed source cannot do is refused by validate, with the message and path train gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import recipe_dict, tiny_arrays, write_yaml
from PIL import Image


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    a = tiny_arrays(12, 3)
    root = tmp_path_factory.mktemp("streamed") / "train"
    for i, (img, label) in enumerate(zip(a["x_train"], a["y_train"])):
        folder = root / str(a["class_names"][label])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0], mode="L").save(folder / f"{i:04d}.png")
    return root


CASES = {
    "zca": ({"normalize": "zca"}, {}, "data.normalize", "normalize: zca with source: image_dir"),
    "fancy_pca": ({"augment": [{"type": "fancy_pca"}]}, {}, "data.augment", "fancy_pca with source: image_dir"),
    "cross_validation": ({}, {"cross_validation": 2}, "train.cross_validation",
                         "cross_validation=2 with source: image_dir"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_refuses_what_train_refuses_on_a_streamed_source(cli, image_folder, tmp_path, case):
    data, train, path, said = CASES[case]
    recipe = write_yaml(tmp_path / "imgs.yaml", recipe_dict(
        Path("unused.npz"), name="imgs",
        data={"source": "image_dir", "path": str(image_folder), "validation_split": 0.25, "normalize": "rescale",
              **data},
        train={"epochs": 1, "batch_size": 4, "optimizer": "adam", "learning_rate": 0.01, **train}))
    checked = cli("validate", recipe)
    assert checked.exit_code == 2, checked.stdout + checked.stderr
    shown = " ".join((checked.stdout + checked.stderr).split())
    assert path in shown and said in shown and "source: npz" in shown, shown
    out = tmp_path / "runs"
    trained = cli("train", recipe, "--out", out)
    assert trained.exit_code == 2, trained.stderr
    message = " ".join(trained.stderr.split())
    assert path in message and said in message, message
    assert not out.exists() or not any(out.rglob("recipe.yaml"))  # no run folder
