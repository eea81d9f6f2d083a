"""HourNAS search command.

    python -m hournas_tf.search                      # embedded demo (digits)
    python -m hournas_tf.search --flagfile=configs/fbnet.flags --dry_run
    python -m hournas_tf.search --flagfile=configs/fbnet.flags \\
        --data_dir=~/tensorflow_datasets

With no flags the search runs the embedded default (the same values as
configs/demo.flags): the EfficientNet-B0 space at 32x32 and width 0.25 on
scikit-learn's digits, a few minutes on a laptop CPU.
"""

import dataclasses
import datetime
import os

from absl import flags

from hournas_tf import command_flags
from hournas_tf import distribute
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as config_lib
from hournas_tf.resources.counting import human

# The embedded default: the `demo` preset (nas/config.py, the one home of
# the defaults; configs/demo.flags holds the same values, a test checks).
PRESET = 'demo'


def define_flags():
    """Defines the command's flags (`--flagfile` reads them from a file),
    one per `SearchConfig` field (a test checks) with its default from
    the `demo` preset, and the three targets for `targets`."""
    d = config_lib.preset(PRESET)
    # Space and data.
    command_flags.define_space_flags(
        {k: getattr(d, k) for k in ('space', 'image_size',
                                    'width_multiplier', 'num_classes')},
        notes={'num_classes': "(default: the dataset's)"})
    command_flags.define_data_flags(d.dataset)
    command_flags.define_validation_flag(
        d.validation_fraction, 'the search never reads it (its 80/20 split '
        'is of the rest), so a retraining with the same fraction can be '
        'evaluated on images the search did not see.')
    # Targets.
    command_flags.define_target_flags(latency=True, notes={
        'target_macs': f"Without either target: the demo's "
                       f"{human(d.targets['macs'])} MACs and "
                       f"{human(d.targets['params'])} params; give one "
                       'alone to search for it alone.'})
    command_flags.define_latency_table_flag('makes latency_ms an objective')
    flags.DEFINE_string('budgets', None, 'Several budgets from one '
                        'search (instead of --target_*): target sets '
                        'separated by ",", targets by "/", an optional '
                        'name= and m:N (its proposals), e.g. '
                        'small=macs:150e6/params:3e6,macs:300e6/params:'
                        '4.8e6; or a *.json file (docs/multi_budget.md).')
    flags.DEFINE_integer('budget_draws', d.budget_draws,
                         'Architectures drawn per supernet step to find '
                         'one within --tolerance of every target; the step '
                         'trains the first that is (or the first draw if '
                         'none is). 1: train every '
                         'draw as it comes (the paper).', lower_bound=1)
    flags.DEFINE_bool('repair', d.repair, 'Move a derived architecture that '
                      'misses a target into the tolerance box by greedy '
                      'single-layer changes (arch.json reports the result '
                      'before repair either way); false reports a miss as '
                      'it is.')
    # Algorithm.
    flags.DEFINE_integer('num_proposals', d.num_proposals,
                         'Number of space proposals m.', lower_bound=1)
    flags.DEFINE_integer('proposal_iters', d.proposal_iters,
                         'Iterations of the proposal optimization.',
                         lower_bound=1)
    flags.DEFINE_integer('vital_epochs', d.vital_epochs,
                         'Epochs of stage 1 (vital layers).', lower_bound=0)
    flags.DEFINE_integer('nonvital_epochs', d.nonvital_epochs,
                         'Epochs of stage 2 (non-vital layers).',
                         lower_bound=0)
    flags.DEFINE_integer('max_steps_per_epoch', None,
                         'Cap on steps per epoch (default: one pass over '
                         'the 80% weight split).', lower_bound=1)
    flags.DEFINE_integer('batch_size', d.batch_size,
                         'Global batch size (split over replicas).',
                         lower_bound=1)
    flags.DEFINE_enum('sampler', d.sampler, config_lib.SAMPLERS,
                      'gumbel_max: one op per layer per step (HourNAS); '
                      'gumbel_softmax: all ops weighted (FBNet); softmax: '
                      'DARTS.')
    flags.DEFINE_enum('vital_sampler', d.vital_sampler, config_lib.SAMPLERS,
                      'Sampler of stage 1 (vital layers only); see '
                      'docs/search.md.')
    flags.DEFINE_bool('vital_first', d.vital_first,
                      'Search the vital layers first '
                      '(false: one stage, all layers through proposals; '
                      'paper table 4).')
    flags.DEFINE_list('vital_ops', None, 'Skip stage 1 with these vital '
                      'ops (one per vital layer, or "max").')
    flags.DEFINE_float('alpha', d.alpha, 'Slope of the resource loss.')
    flags.DEFINE_float('beta', d.beta, 'Weight of the proposal '
                       'orthogonality term.')
    flags.DEFINE_float('tau_init', d.tau_init, 'Initial Gumbel temperature of '
                       'stage 1 (the paper\'s 5.0).')
    flags.DEFINE_float('nonvital_tau_init', d.nonvital_tau_init,
                       'Initial Gumbel temperature '
                       'of the straight-through relaxation in stage 2, in '
                       'the units of the proposals (their sampling '
                       'temperature is --proposal_tau_end; docs/search.md).')
    define_proposal_flags(d)
    flags.DEFINE_float('tau_decay', d.tau_decay, 'Temperature decay per step.')
    flags.DEFINE_float('weight_lr', d.weight_lr,
                       'SGD learning rate of the weights.')
    flags.DEFINE_float('arch_lr', d.arch_lr, 'Adam learning rate of the '
                       "architecture parameters (the demo's default; the "
                       'paper and configs/*.flags use 0.01).')
    flags.DEFINE_bool('zero_init_residual', d.zero_init_residual,
                      'Start every searched '
                      'residual branch at zero (its last batch-norm scale), '
                      'so inserted blocks begin as the identity and stage 2 '
                      "starts from stage 1's function.")
    flags.DEFINE_integer('seed', d.seed, 'Random seed.')
    # Run.
    flags.DEFINE_string('output_dir', None, 'Where to write the results '
                        '(default: runs/<space>-<time>; must not exist or '
                        'be empty).')
    command_flags.define_strategy_flags(d.strategy)
    flags.DEFINE_bool('per_replica_paths', d.per_replica_paths,
                      'Each replica samples '
                      'its own path (TuNAS) instead of one path per step '
                      'for all (docs/distribute.md).')
    flags.DEFINE_bool('dry_run', False, 'Everything but training: spaces, '
                      'vital analysis, feasibility, proposals, 10,000 '
                      'samples.')
    flags.DEFINE_bool('graph_optimizations', d.graph_optimizations,
                      "Run TensorFlow's "
                      'graph optimizer (Grappler) on the train step; off by '
                      'default because it makes the first step of a large '
                      'supernet minutes slower.')
    flags.DEFINE_bool('deterministic', d.deterministic,
                      "TensorFlow's op determinism "
                      '(kernels and tf.data): two runs with the same seed '
                      'write the same arch.json, and --resume continues '
                      'exactly; slower (docs/resilience.md).')
    flags.DEFINE_integer('checkpoint_every', d.checkpoint_every,
                         'Steps between '
                         'checkpoints in <output_dir>/checkpoints (also at '
                         'every epoch end).', lower_bound=1)
    flags.DEFINE_bool('resume', d.resume, 'Continue the run in --output_dir '
                      'from its newest checkpoint, with its '
                      'search_config.json; only ' + ', '.join(
                          f'--{n}' for n in RESUME_FLAGS + DEVICE_FLAGS) +
                      ' may change.')
    flags.DEFINE_integer('verbose', d.verbose,
                         'Keras fit verbosity: 0 quiet, 1 '
                         'progress bars, 2 one line per epoch and the log '
                         'lines of TensorFlow, absl and tensorflow-datasets '
                         '(held back otherwise).')


def define_proposal_flags(d):
    """The space proposals' and stage 2's settings (docs/search.md, "Stage
    2 searches"; configs/paper.flags sets the paper's values); defaults
    from the `SearchConfig` `d`."""
    flags.DEFINE_float('proposal_lr', d.proposal_lr, 'Adam learning rate '
                       'of the proposal optimization.')
    flags.DEFINE_float('proposal_tau_start', d.proposal_tau_start,
                       'First temperature of the proposals\' annealing.')
    flags.DEFINE_float('proposal_tau_end', d.proposal_tau_end, 'Last '
                       'temperature of the annealing, the one stage 2 '
                       'samples at.')
    flags.DEFINE_float('proposal_hold', d.proposal_hold, 'Share of the '
                       'iterations held at --proposal_tau_end.')
    flags.DEFINE_float('proposal_entropy', d.proposal_entropy, 'Weight of '
                       'the bonus for the proposals\' row entropy: keeps '
                       'choice among ops of nearly equal cost (0: the '
                       'paper).')
    flags.DEFINE_float('proposal_min_share', d.proposal_min_share, 'If '
                       'fewer of 10,000 draws from the proposals land '
                       'within --tolerance, optimize them again from '
                       'another start, then with 1/2 and 1/4 of the '
                       'entropy bonus, then without it.')
    flags.DEFINE_float('proposal_slack', d.proposal_slack, 'Misses within '
                       'this share of --tolerance cost the proposals '
                       'nothing (0: the paper).')
    flags.DEFINE_float('proposal_mode_weight', d.proposal_mode_weight,
                       'Weight of the term that steers each proposal\'s '
                       'most probable architecture onto the targets (0: '
                       'the paper).')
    flags.DEFINE_enum('proposal_orthogonality', d.proposal_orthogonality,
                      config_lib.ORTHOGONALITY, 'Form of the proposals\' '
                      'orthogonality term: centered logits (cosine), '
                      'probabilities, or the paper\'s raw logits.')
    flags.DEFINE_enum('proposal_reduction', d.proposal_reduction,
                      config_lib.REDUCTIONS, 'Resource terms summed over '
                      'the proposals, or the paper\'s mean.')
    flags.DEFINE_bool('proposal_repair', d.proposal_repair, 'Safety net: '
                      'swap the logits of a proposal whose most probable '
                      'architecture misses a target before stage 2 '
                      '(reported as a repair).')
    flags.DEFINE_float('resource_slack', d.resource_slack, 'Stage 2: '
                       'misses within this multiple of --tolerance cost '
                       'nothing, so inside the budget only accuracy moves '
                       'the architecture (0: the paper).')
    flags.DEFINE_enum('resource_estimate', d.resource_estimate,
                      config_lib.RESOURCE_ESTIMATES, 'Stage 2\'s resource '
                      'loss reads each proposal\'s expected totals, '
                      'weighted by pi (smooth, zero while they are inside '
                      'the budget), or the step\'s first draw (the '
                      'paper).')
    flags.DEFINE_float('pi_tau', d.pi_tau, 'Relaxation temperature of the '
                       'proposal sampler pi (default: the ops\' tau).')
    flags.DEFINE_enum('derive', d.derive, config_lib.DERIVATIONS,
                      'in_budget: the most probable architecture within '
                      '--tolerance of every target; argmax: each layer\'s '
                      'most probable op (the paper).')


# Flags a resumed search may change (e.g. a lower learning rate after a
# non-finite loss); every other setting comes from search_config.json.
# The devices may change too (a preempted run may continue on other
# machines): given one of DEVICE_FLAGS, all three come from the command
# line, defaults included.
RESUME_FLAGS = ('weight_lr', 'arch_lr', 'checkpoint_every', 'verbose')
DEVICE_FLAGS = ('strategy', 'tpu', 'cpu_replicas')
RUN_FLAGS = ('resume', 'output_dir', 'flagfile', 'verbosity')


TARGET_FLAGS = (('target_macs', 'macs'), ('target_params', 'params'),
                ('target_latency_ms', 'latency_ms'))


def _stored_and_given(f, name, config):
    """(the value search_config.json gave `config`, the command's) of flag
    `name`, comparable; None for a flag that is no setting."""
    if name in dict(TARGET_FLAGS):
        given = {obj: float(f[flag].value) for flag, obj in TARGET_FLAGS
                 if f[flag].present and f[flag].value is not None}
        return dict(config.targets), given
    if name == 'budgets':
        from hournas_tf.nas import budgets as budgets_lib

        return ([dataclasses.asdict(b) for b in config.budgets or ()],
                [dataclasses.asdict(b) for b in
                 budgets_lib.parse_budgets(f[name].value)])
    if not hasattr(config, name):
        return None
    stored, given = getattr(config, name), f[name].value
    if isinstance(stored, (list, tuple)) or isinstance(given, (list, tuple)):
        return (tuple(stored) if stored is not None else None,
                tuple(given) if given is not None else None)
    return stored, given


def resume_config_from_flags(f):
    """The resumed run's `SearchConfig`: its search_config.json, changed
    by the `RESUME_FLAGS` given. Other flags may be given with the values
    of search_config.json (the command that started the run, with
    --resume added); a different value is refused, naming both."""
    from hournas_tf.nas import search_lib

    if not f.output_dir:
        raise UserError('--resume needs --output_dir: the folder of the run '
                        'to continue')
    overrides = {name: f[name].value for name in RESUME_FLAGS
                 if f[name].present}
    if any(f[name].present for name in DEVICE_FLAGS):
        overrides.update({name: f[name].value for name in DEVICE_FLAGS})
    config = search_lib.resume_config(f.output_dir, **overrides)
    for name in f:
        if not f[name].present or name in (RESUME_FLAGS + DEVICE_FLAGS
                                           + RUN_FLAGS):
            continue
        values = _stored_and_given(f, name, config)
        if values is None:
            raise UserError(f'--{name} cannot be given with --resume')
        stored, given = values
        if stored != given:
            raise UserError(
                f'--{name} cannot change on --resume: '
                f'{f.output_dir}/search_config.json has {stored!r}, the '
                f'command {given!r} (may change: '
                f'{", ".join(RESUME_FLAGS + DEVICE_FLAGS)})')
    return config


# Flags that are no `SearchConfig` field: the targets make `targets`; the
# rest steer the command.
COMMAND_FLAGS = ('dry_run',)


def config_from_flags(f):
    """A `SearchConfig` from parsed flags: every field from its flag
    (`targets` from the three target flags, the demo's without one)."""
    targets = {obj: float(f[flag].value) for flag, obj in TARGET_FLAGS
               if f[flag].value is not None}
    values = {field.name: f[field.name].value
              for field in dataclasses.fields(config_lib.SearchConfig)
              if field.name != 'targets'}
    values['vital_ops'] = tuple(f.vital_ops) if f.vital_ops else None
    if f.budgets is not None:
        from hournas_tf.nas import budgets as budgets_lib

        if targets:
            raise UserError(f'--budgets cannot be given with '
                            f'--target_{next(iter(targets))}: put every '
                            'target into --budgets')
        values['budgets'] = budgets_lib.parse_budgets(f.budgets)
        targets = dict(values['budgets'][0].targets)
    values['output_dir'] = f.output_dir or os.path.join(
        'runs', f'{f.space}-{datetime.datetime.now():%Y%m%d-%H%M%S}')
    if targets:
        values['targets'] = targets
    return config_lib.preset(PRESET, **values)


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    from hournas_tf.nas import search_lib

    if flags.FLAGS.resume:
        config = resume_config_from_flags(flags.FLAGS)
        runner.keep_log(config.output_dir)  # the held log lines, appended
    else:
        config = config_from_flags(flags.FLAGS)

    if flags.FLAGS.dry_run:
        search_lib.run_dry(config)
    else:
        # Cheap checks first: a bad value fails before TensorFlow loads.
        search_lib.preflight(config)
        search_lib.run_search(config,
                              distribute.make_strategy(
                                  config.strategy, config.tpu,
                                  config.cpu_replicas))


if __name__ == '__main__':
    define_flags()
    runner.run(main, show_logs=lambda f: f.verbose >= 2,
               skip_teardown=True)
