"""dlrecipe: one YAML recipe in, a trained, tuned, evaluated and exported Keras model out.

Importing this package must stay cheap: it never imports TensorFlow or Keras.
"""

__version__ = "0.1.0"
