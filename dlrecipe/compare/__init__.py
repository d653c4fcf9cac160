"""What reads several run folders at once: ``compare`` (collect, curves) and ``report`` (HTML). No TensorFlow."""
