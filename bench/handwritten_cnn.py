"""The hand-written Keras 3 baseline of bench/overhead.py: what a user would write without dlrecipe.

It trains the same model as the recipe that overhead.py generates, on the same arrays:

    quickstart  recipes/quickstart.yaml's CNN on data/fashion_mnist_sample.npz, Rescaling(1/255), Adam 1e-3,
                batch 64.
    full        recipes/fashion_mnist_cnn.yaml's CNN (conv-BN-ReLU blocks, he_normal) on the full
                Fashion-MNIST, per-channel standardization fitted on the training split, Adam with a
                one-epoch linear warm-up then cosine decay to 0 from 1e-3, batch 128.

The data comes from ``dlrecipe.data.load`` (NumPy only, no dlrecipe model code), so the training,
validation and test splits are identical to dlrecipe's, and both processes pay the same loading time.
Everything else is plain Keras. It fits with ``validation_data`` and Keras's default progress bar,
saves the model (as ``dlrecipe train`` does) and prints ``BENCH_FIT_SECONDS: X`` (the time of
``model.fit``). ``--evaluate`` then evaluates the saved model on the test split, untimed, and prints
``Test accuracy: X`` as ``dlrecipe evaluate`` does.

Usage:
    python bench/handwritten_cnn.py --variant quickstart --epochs 3 --out /tmp/x
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

VARIANTS = {
    "quickstart": {"batch_size": 64, "normalize": "rescale", "source": "npz",
                   "path": str(ROOT / "data" / "fashion_mnist_sample.npz")},
    "full": {"batch_size": 128, "normalize": "per_channel", "source": "fashion_mnist", "path": None},
}


def quickstart_model(keras, input_shape):
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=input_shape, dtype="float32"),
        layers.Rescaling(1.0 / 255.0),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def full_model(keras, input_shape, mean, variance):
    layers = keras.layers

    def conv_bn_relu(filters):
        return [layers.Conv2D(filters, 3, use_bias=False, kernel_initializer="he_normal"),
                layers.BatchNormalization(), layers.Activation("relu")]

    return keras.Sequential([
        keras.Input(shape=input_shape, dtype="float32"),
        layers.Normalization(axis=-1, mean=mean, variance=variance),
        # block 1: 28 -> 26 -> 24 -> 12
        *conv_bn_relu(32), *conv_bn_relu(32), layers.MaxPooling2D(2), layers.Dropout(0.25),
        # block 2: 12 -> 10 -> 8 -> 4
        *conv_bn_relu(64), *conv_bn_relu(64), layers.MaxPooling2D(2), layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512, use_bias=False, kernel_initializer="he_normal"),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax", kernel_initializer="glorot_uniform"),
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description="Hand-written Keras baseline for bench/overhead.py.")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="quickstart")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--validation-split", type=float, default=0.1)
    ap.add_argument("--subset", type=int, default=None, help="only the first N training examples (data.subset)")
    ap.add_argument("--data-path", default=None, help="override the data file (npz) or folder (IDX files)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the saved model")
    ap.add_argument("--evaluate", action="store_true",
                    help="only evaluate the model saved in --out on the test split (untimed accuracy pass)")
    args = ap.parse_args()
    v = VARIANTS[args.variant]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import keras
    import numpy as np

    from dlrecipe.data.source import load
    from dlrecipe.recipe.schema import DataConfig

    keras.utils.set_random_seed(args.seed)
    cfg = DataConfig(source=v["source"], path=args.data_path or v["path"], validation_split=args.validation_split,
                     normalize=v["normalize"], subset=args.subset)
    ds = load(cfg, args.seed)
    if args.evaluate:
        model = keras.saving.load_model(args.out / "model.keras", safe_mode=True)
        loss, accuracy = model.evaluate(ds.x_test, ds.y_test, batch_size=v["batch_size"], verbose=0)
        print(f"Test loss: {loss:.4f}")
        print(f"Test accuracy: {accuracy:.4f}")
        return
    input_shape = ds.x_train.shape[1:]
    batch = v["batch_size"]
    steps = math.ceil(len(ds.x_train) / batch)

    if args.variant == "quickstart":
        model = quickstart_model(keras, input_shape)
        learning_rate = 1e-3
    else:
        x64 = ds.x_train.astype(np.float64)
        mean, std = x64.mean(axis=(0, 1, 2)), x64.std(axis=(0, 1, 2))  # per channel
        del x64
        model = full_model(keras, input_shape, mean, np.square(std))
        warmup = min(1, args.epochs) * steps
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0, decay_steps=max(1, (args.epochs - 1) * steps), alpha=0.0,
            warmup_target=1e-3, warmup_steps=warmup)

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(ds.x_train, ds.y_train, batch_size=batch, epochs=args.epochs, shuffle=True,
              validation_data=(ds.x_val, ds.y_val))
    fit_s = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.keras")
    print(f"BENCH_FIT_SECONDS: {fit_s:.3f}")


if __name__ == "__main__":
    main()
