"""Retraining: the retrain library, tf.distribute strategies and
checkpoints."""
