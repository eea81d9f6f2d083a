"""The training recipe as Keras objects: schedule, optimizer, weight decay,
loss, metrics and the precision policy.

- Learning rate: linear warm-up from 0 to the peak over the warm-up steps,
  then cosine decay to 0 at the last step (`keras.optimizers.schedules.
  CosineDecay` with `warmup_target`).
- Optimizer: SGD with momentum (0.9 in every recipe); `ema_momentum` > 0
  keeps an exponential moving average of the weights (Keras `use_ema`),
  which replaces the weights at the end of `fit`.
- Weight decay: L2 on conv and dense kernels only (no biases, no batch-norm
  gamma/beta), added to the loss as `weight_decay / 2 * sum(w ** 2)`, so
  the gradient gets `weight_decay * w` before momentum: the coupled decay of
  PyTorch's SGD (FBNet) and of tensorflow/tpu's EfficientNet, which is what
  the papers' 1e-5 means. Keras's decoupled `weight_decay` would subtract
  `lr * weight_decay * w` after momentum, an effectively 10x weaker decay
  at momentum 0.9 for the same number.
- Loss: cross-entropy on logits with label smoothing (labels one-hot).
- Mixed precision: the `mixed_float16` policy; `compile` then wraps the
  optimizer in a `LossScaleOptimizer`.
"""

import contextlib

import keras

MIXED_POLICY = 'mixed_float16'


def learning_rate_schedule(learning_rate, total_steps, warmup_steps):
    """Linear warm-up to `learning_rate`, cosine decay to 0 at
    `total_steps`."""
    warmup_steps = int(warmup_steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, int(total_steps) - warmup_steps), alpha=0.0,
        warmup_target=float(learning_rate), warmup_steps=warmup_steps)


def make_optimizer(config, steps_per_epoch):
    """SGD with momentum on the warm-up + cosine schedule, EMA if asked."""
    schedule = learning_rate_schedule(
        config.learning_rate, config.epochs * steps_per_epoch,
        round(config.warmup_epochs * steps_per_epoch))
    use_ema = config.ema_momentum > 0
    return keras.optimizers.SGD(
        schedule, momentum=config.momentum, use_ema=use_ema,
        ema_momentum=config.ema_momentum if use_ema else 0.99)


def is_kernel(variable):
    """True for conv, depthwise and dense kernels."""
    return variable.name.endswith('kernel')


def add_kernel_weight_decay(model, weight_decay):
    """Puts an L2 regularizer of `weight_decay / 2` on every kernel of
    `model`; returns the kernels. Nothing is added for 0."""
    kernels = [v for v in model.trainable_weights if is_kernel(v)]
    if weight_decay:
        regularizer = keras.regularizers.L2(weight_decay / 2)
        for variable in kernels:
            variable.regularizer = regularizer
    return kernels


def make_loss(label_smoothing):
    """Cross-entropy on logits against one-hot labels."""
    return keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=label_smoothing)


def make_metrics(num_classes):
    """Top-1 accuracy and plain cross-entropy (no smoothing, no weight
    decay); top-5 accuracy from 100 classes on."""
    metrics = [keras.metrics.CategoricalAccuracy(name='accuracy'),
               keras.metrics.CategoricalCrossentropy(
                   from_logits=True, name='cross_entropy')]
    if num_classes >= 100:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(
            5, name='top5_accuracy'))
    return metrics


@contextlib.contextmanager
def precision_policy(mixed):
    """Builds models under `mixed_float16` (or float32) inside the block;
    restores the previous global policy after it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(MIXED_POLICY if mixed else 'float32')
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
