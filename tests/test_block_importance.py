"""training/block_importance.py: masking one block at a time."""

import io

import numpy as np
import pytest

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.training import block_importance as bi

ARCH = spaces.get_reference('mobilenet_v2', image_size=16, num_classes=10,
                            width_multiplier=0.35)


@pytest.fixture(scope='module')
def data():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.normal(size=(24, 16, 16, 3)).astype(np.float32)
    labels = rng.integers(0, 10, 24).astype(np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(10)


@pytest.fixture(scope='module')
def model(data):
    import keras

    import hournas_tf
    from hournas_tf.training import recalibration

    keras.utils.set_random_seed(0)
    net = hournas_tf.build_model(ARCH)
    # Batch-norm statistics of the data, so that activations keep their
    # scale through the untrained blocks; a bias per class.
    recalibration.recalibrate_batch_norm(net, data, 3)
    net.layers[-1].bias.assign(0.1 * np.arange(10, dtype=np.float32))
    return net


@pytest.fixture(scope='module')
def forward(model):
    return bi.masked_forward(model, ARCH)


def test_blocks_are_stem_layers_head_with_the_vital_analysis():
    items = bi.blocks(ARCH)
    space = ARCH.search_space()
    assert [b.name for b in items] == ['stem', *(
        f'L{i + 1}' for i in range(len(space.layers))), 'head']
    assert items[1].layer == 'layer01' and items[-1].layer == 'head'
    assert {b.name for b in items if b.vital} == {
        'stem', 'head', *(f'L{i + 1}' for i in space.vital_layers)}
    # Exactly the layers with an identity shortcut are masked on their
    # residual branch; none of them is vital.
    for b, layer in zip(items[1:-1], space.layers):
        assert b.residual == layer.has_shortcut
        assert not (b.residual and b.vital)


def test_check_model_refuses_a_model_of_another_architecture(model):
    other = spaces.get_reference('fbnet_b', image_size=16, num_classes=10)
    bi.check_model(model, ARCH)
    with pytest.raises(UserError, match='is not a hournas_tf model of'):
        bi.check_model(model, other)


def test_masked_forward_is_the_model_without_masks_and_masks_outputs(
        model, forward, data):
    import tensorflow as tf

    images, _ = next(iter(data))
    n = len(bi.blocks(ARCH))
    seed = tf.constant([0, 0], tf.int32)
    plain = forward(images, tf.zeros([n]), seed).numpy()
    np.testing.assert_allclose(plain, model(images, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)
    # The head's output all zero: the logits are the classifier's bias,
    # the same for every image.
    drop = np.zeros(n, np.float32)
    drop[-1] = 1.0
    logits = forward(images, tf.constant(drop), seed).numpy()
    bias = model.layers[-1].get_weights()[-1]
    np.testing.assert_allclose(logits, np.broadcast_to(bias, logits.shape),
                               atol=1e-6)
    assert np.abs(plain - bias).max() > 0.1
    # A residual block fully masked passes its input on: the same as
    # replacing its op by the identity, i.e. different from the model.
    k = next(k for k, b in enumerate(bi.blocks(ARCH)) if b.residual)
    drop = np.zeros(n, np.float32)
    drop[k] = 1.0
    skipped = forward(images, tf.constant(drop), seed).numpy()
    assert np.abs(skipped - plain).max() > 1e-3 * np.abs(plain).max()
    # p = 0.5 drops about half of the channels: between the two.
    drop[k] = 0.5
    half = forward(images, tf.constant(drop), seed).numpy()
    assert 0 < np.abs(half - plain).max()
    assert np.abs(half - skipped).max() > 0


def test_accuracy_counts_the_argmax_over_all_batches(model, forward,
                                                     data):
    n = len(bi.blocks(ARCH))
    correct = total = 0
    for images, labels in data:
        pred = np.argmax(model(images, training=False).numpy(), -1)
        correct += int((pred == labels.numpy()).sum())
        total += len(labels)
    assert total == 24
    assert bi.accuracy(forward, data, [0.0] * n, 0) == correct / total


def test_importance_summary_and_plot(model, data):
    import matplotlib.image

    result = bi.importance(model, ARCH, data, probabilities=(1.0,),
                           seeds=(0, 1))
    assert result['probabilities'] == [1.0]
    assert len(result['blocks']) == len(bi.blocks(ARCH))
    for row in result['blocks']:
        assert set(row['drops']) == {'1'}
        for d in row['drops'].values():
            assert len(d['per_seed']) == 2
            assert d['drop'] == pytest.approx(
                result['baseline_accuracy'] - np.mean(d['per_seed']))
    vital = [d['drop'] for r in result['blocks'] if r['vital']
             for d in r['drops'].values()]
    assert result['vital_mean_drop'] == pytest.approx(np.mean(vital))
    assert set(result['per_probability']) == {'1'}
    # The head's output zeroed: every image gets the same class.
    head = result['blocks'][-1]['drops']['1']['per_seed']
    assert head[0] == head[1] and result['blocks'][-1]['name'] == 'head'
    buffer = io.BytesIO()
    bi.plot(result, 'test', buffer)
    image = matplotlib.image.imread(io.BytesIO(buffer.getvalue()),
                                    format='png')
    assert image.shape[1] > 600 and image.std() > 0.05


def test_summary_of_hand_made_rows():
    def row(vital, drops):
        return {'vital': vital, 'drops': {
            p: {'drop': d} for p, d in zip(('0.3', '1'), drops)}}

    out = bi.summary([row(True, (0.2, 0.6)), row(False, (0.0, 0.2)),
                      row(False, (0.1, 0.1))])
    assert out['vital_mean_drop'] == pytest.approx(0.4)
    assert out['non_vital_mean_drop'] == pytest.approx(0.1)
    assert out['vital_lose_more']
    assert out['per_probability']['1'] == {'vital': 0.6,
                                           'non_vital': pytest.approx(0.15)}
    assert not bi.summary([row(True, (0.0, 0.0)),
                           row(False, (0.1, 0.1))])['vital_lose_more']
    assert not bi.summary([row(False, (0.1, 0.1))])['vital_lose_more']
