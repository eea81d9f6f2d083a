"""Exporting: SavedModel, TFLite (float, fp16, int8, QAT twin) and parity
checks."""
