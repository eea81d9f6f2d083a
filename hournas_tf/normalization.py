"""The input normalization every model of hournas_tf is trained with (pure).

RGB values in [0, 255] become `(x - MEAN_RGB) / STDDEV_RGB`, the usual
ImageNet statistics. The input pipeline applies it
(`data.preprocessing.normalize`), or the model does with
`build_model(arch, include_preprocessing=True)` (a
`keras.layers.Normalization` named `PREPROCESSING_LAYER`). Both read the
constants here, the one module below `data/` and `blocks/`.
"""

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
PREPROCESSING_LAYER = 'preprocessing'
