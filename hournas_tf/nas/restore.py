"""A search run's stage-2 supernet, saved and rebuilt.

`save_supernet(supernet, run_dir)` writes `supernet.weights.h5` (every
model variable: weights, batch-norm statistics, architecture parameters)
and `supernet.json` (what rebuilds the same structure: the space, the
searched rows, the fixed ops and the proposals' shape).
`load_supernet(run_dir)` rebuilds it and loads the weights, so any
architecture of the supernet's space whose fixed layers match can be
given its inherited weights (`derive.standalone_model`), not only the
derived ones. `trained_ops(supernet)` says which of its ops ever ran in
training (an op no draw picked keeps its initial weights).
"""

import os

import numpy as np

from hournas_tf import spaces
from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError

SPEC_FILE = 'supernet.json'
WEIGHTS_FILE = 'supernet.weights.h5'
SPEC_VERSION = 1


def supernet_spec(supernet):
    """The JSON-able description that rebuilds `supernet`."""
    space = supernet.space
    props = None
    if supernet.has_proposals:
        props = list(supernet.proposal_op_probabilities().shape)
    return {
        'version': SPEC_VERSION,
        'space': space.name,
        'image_size': space.image_size,
        'num_classes': space.num_classes,
        'width_multiplier': space.width_multiplier,
        'searched': [int(i) for i in supernet.searched],
        'fixed_ops': {str(i): op for i, op in supernet.fixed_ops.items()},
        'proposals_shape': props,
        'sampler': supernet.config.sampler,
        'sample_temperature': supernet.config.sample_temperature,
    }


def save_supernet(supernet, run_dir):
    """Writes `supernet.json` and `supernet.weights.h5` into `run_dir`."""
    jsonio.write_json(os.path.join(run_dir, SPEC_FILE),
                      supernet_spec(supernet))
    supernet.save_weights(os.path.join(run_dir, WEIGHTS_FILE))


def load_spec(run_dir):
    """The `supernet.json` of a run; UserError if it has none."""
    path = os.path.join(run_dir, SPEC_FILE)
    if not os.path.isfile(path):
        raise UserError(f'{run_dir} has no {SPEC_FILE}: not a finished '
                        'search run (or one from before supernets were '
                        'saved)')
    spec = jsonio.read_json(path, 'supernet spec')
    if spec.get('version') != SPEC_VERSION:
        raise UserError(f'{path}: unsupported version '
                        f'{spec.get("version")!r}; expected {SPEC_VERSION}')
    return spec


def spec_space(spec):
    """The `SearchSpace` instance of a spec."""
    return spaces.get_space(spec['space'], image_size=spec['image_size'],
                            num_classes=spec['num_classes'],
                            width_multiplier=spec['width_multiplier'])


def load_supernet(run_dir):
    """Rebuilds a run's stage-2 supernet with its saved weights."""
    from hournas_tf.nas import supernet as supernet_lib

    spec = load_spec(run_dir)
    space = spec_space(spec)
    fixed = {int(i): op for i, op in spec['fixed_ops'].items()}
    proposals = None
    if spec['proposals_shape']:
        proposals = np.zeros(spec['proposals_shape'], np.float32)
    config = supernet_lib.SupernetConfig(
        sampler=spec['sampler'],
        sample_temperature=spec['sample_temperature'])
    net = supernet_lib.build_supernet(space, tuple(spec['searched']), fixed,
                                      config, proposals=proposals)
    net.load_weights(os.path.join(run_dir, WEIGHTS_FILE))
    return net


def covers(spec, arch):
    """Whether the supernet of `spec` holds every op of `arch` (same space
    instance, fixed layers equal)."""
    params = (spec['space'], spec['image_size'], spec['num_classes'],
              spec['width_multiplier'])
    if (arch.space, arch.image_size, arch.num_classes,
            arch.width_multiplier) != params:
        return False
    return all(arch.ops[int(i)] == op for i, op in spec['fixed_ops'].items())


def trained_ops(supernet):
    """{layer index: set of op names} of the ops of `supernet` that ran in
    training: every batch-norm layer of the op has moving statistics off
    their initial values (mean 0, variance 1). An op never drawn keeps
    them, and with `zero_init_residual` its last gamma 0 (the identity).
    `skip` has no weights and counts as trained."""
    from hournas_tf.blocks.recalibration import batch_norm_layers

    result = {}
    for (i, op), layer in supernet.op_layers().items():
        moved = all(
            np.any(bn.moving_mean.numpy() != 0)
            or np.any(bn.moving_variance.numpy() != 1)
            for bn in batch_norm_layers(layer))
        if moved:
            result.setdefault(i, set()).add(op)
    return result
