"""Keras 3 blocks: the candidate ops as layers (`layers`), the plain model
of an architecture (`model.build_model`) and an independent MAC/param count
read off a built model (`keras_count`)."""
