"""Quantization-aware training through the tf_keras twin (tfmot).

tensorflow-model-optimization quantizes tf_keras models only, so the QAT
model starts from `twins.build_twin(model, 'tf_keras')`. Two twin layers
need an explicit quantize config: `Multiply` (the squeeze-excite gate; tfmot
has no default for it, tensorflow/model-optimization#733) quantizes its
output only, and the channel slices of grouped convs pass through. Every
other layer takes tfmot's default 8-bit scheme (conv + batch norm + ReLU
patterns fold). The quantizer ranges only adapt in training mode, so the
model is fine-tuned for a few steps before it is converted.

Importing tfmot sets `TF_USE_LEGACY_KERAS=1` for the process (`tf.keras`
becomes tf_keras); hournas_tf uses `import keras` and is unaffected, and
this module imports tfmot only inside its functions.
"""

from hournas_tf.exporting import config
from hournas_tf.exporting import twins


def _tfmot():
    config.require_qat()
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.\
        default_8bit import default_8bit_quantize_configs as configs

    return tfmot.quantization.keras, configs


def quantize(twin):
    """The QAT model (fake-quantized tf_keras) of a tf_keras twin."""
    config.require_qat()
    import tf_keras

    q, configs = _tfmot()
    slice_class = twins.channel_slice_class()
    annotations = {'Multiply': configs.Default8BitOutputQuantizeConfig,
                   slice_class.__name__: configs.NoOpQuantizeConfig,
                   'Normalization': configs.NoOpQuantizeConfig}

    def annotate(layer):
        clone = layer.__class__.from_config(layer.get_config())
        config = annotations.get(type(layer).__name__)
        return clone if config is None else q.quantize_annotate_layer(
            clone, config())

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    annotated.set_weights(twin.get_weights())
    with q.quantize_scope({
            slice_class.__name__: slice_class,
            'Default8BitOutputQuantizeConfig':
                configs.Default8BitOutputQuantizeConfig,
            'NoOpQuantizeConfig': configs.NoOpQuantizeConfig}):
        return q.quantize_apply(q.quantize_annotate_model(annotated))


def fine_tune(qat_model, dataset, steps, learning_rate=1e-5):
    """`steps` Adam steps on (images, labels) batches (repeated)."""
    config.require_qat()
    import tf_keras

    qat_model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=['accuracy'])
    history = qat_model.fit(dataset.repeat(), steps_per_epoch=steps,
                            epochs=1, verbose=0)
    return {k: float(v[-1]) for k, v in history.history.items()}


def qat_model(model, dataset, steps, learning_rate=1e-5):
    """(fine-tuned QAT tf_keras model, last training metrics) of a
    hournas_tf Keras 3 model."""
    qat = quantize(twins.build_twin(model, 'tf_keras'))
    return qat, fine_tune(qat, dataset, steps, learning_rate)
