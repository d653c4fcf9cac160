"""The csv encoding inside a TensorFlow graph, for the exported model (TensorFlow only).

The exported ``serving_default`` of a csv run takes one input per feature
column, named by the column's sanitized name (``input`` in the stored
encoding): float32 for a numeric column (NaN = missing), string for a
categorical one ("" or an NA token = missing). ``encode`` fills and one-hot
encodes them exactly as ``csvdata.encode`` does with NumPy, so the served
model takes raw rows and the trained model's float32 features never leave
the graph.
"""

from __future__ import annotations

import numpy as np

from dlrecipe.data import tabular

UNSEEN = "\u2205 a category never seen in training"  # a probe row's value, for the export's check


def input_signature(spec: dict) -> dict:
    """``{input name: tf.TensorSpec((None,), float32 | string)}``, one per feature column."""
    import tensorflow as tf

    return {c["input"]: tf.TensorSpec((None,), tf.float32 if c["kind"] == "numeric" else tf.string, name=c["input"])
            for c in spec["columns"]}


def encode(spec: dict, inputs: dict):
    """Raw column tensors -> the model's float32 features ``(batch, width)`` (a traced function body)."""
    import tensorflow as tf

    na = tf.constant(spec["na_tokens"], dtype=tf.string)
    parts = []
    for col in spec["columns"]:
        x = inputs[col["input"]]
        if col["kind"] == "numeric":
            x = tf.cast(x, tf.float32)
            parts.append(tf.where(tf.math.is_nan(x), tf.constant(col["fill"], tf.float32), x)[:, None])
            continue
        # Strings are only compared (no string select or strip), so that TFLite converts the graph.
        categories = col["categories"]
        is_na = tf.reduce_any(tf.equal(x[:, None], na[None, :]), axis=1, keepdims=True)
        one_hot = tf.cast(tf.equal(x[:, None], tf.constant(categories, dtype=tf.string)[None, :]), tf.float32)
        filled = tf.constant([[1.0 if c == col["fill"] else 0.0 for c in categories]], tf.float32)
        parts.append(tf.where(is_na, filled, one_hot))
    return tf.concat(parts, axis=1)


def check_rows(spec: dict, raw: dict | None, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Raw rows to verify an export with, and their encoding by ``csvdata.encode``.

    The first ``n`` test rows, then probe rows made from the first one: each column missing in
    turn (NaN, ""), each categorical column with "NA" and with a category never seen in training.

    Returns:
        ``({input name: column}, encoded float32 rows)``.
    """
    if not raw:
        raise ValueError("a csv run's export needs the raw test rows")
    first = {k: v[:1] for k, v in raw.items()}
    blocks = [{k: v[:n] for k, v in raw.items()}]
    for col in spec["columns"]:
        name = col["name"]
        values = [np.nan] if col["kind"] == "numeric" else ["", "NA", UNSEEN]
        for value in values:
            row = dict(first)
            row[name] = np.asarray([value], dtype=np.float64 if col["kind"] == "numeric" else object)
            blocks.append(row)
    columns = {}
    for col in spec["columns"]:
        parts = [np.asarray(b[col["name"]], dtype=np.float32 if col["kind"] == "numeric" else object)
                 for b in blocks]
        columns[col["name"]] = np.concatenate(parts)
    encoded = tabular.encode(spec, columns)
    inputs = {c["input"]: columns[c["name"]] if c["kind"] == "numeric" else
              columns[c["name"]].astype(str).astype(object) for c in spec["columns"]}
    return inputs, encoded
