"""How many architectures drawn from the space proposals land in the budget.

    python tools/proposal_share.py                      # the demo's table
    python tools/proposal_share.py --space=fbnet --image_size=224 \\
        --width_multiplier=1.0 --num_classes=1000 \\
        --target_macs=295e6 --target_params=4.8e6
    python tools/proposal_share.py --variants='entropy_weight=0' \\
        --variants='entropy_weight=0.03' --seeds=6

For each variant of the proposal optimization (`ProposalConfig` fields,
`name=value` separated by spaces) and each seed, optimizes the proposals
over the non-vital layers (vital ops as `--vital_ops`, default the largest,
changed where needed to keep the targets reachable: the dry run's plan) and
draws 10,000 architectures at the proposals' own sampling temperature
(`tau_end`, the one stage 2 draws at) with uniform pi. Prints, per variant,
the share within tolerance of every target (min and mean over seeds), the
worst single proposal's share (2,000 draws each: what stage 2 sees when pi
concentrates on it), the mean top probability of the searched rows at that
temperature (1.0: one-hot proposals, nothing left to search), how many
proposals the safety net changed (with `repair=true`) and the optimization
time, as a markdown table;
`--output` also writes the numbers as JSON.
"""

import dataclasses
import os

from absl import flags

from hournas_tf import command_flags
from hournas_tf import spaces
from hournas_tf.common import jsonio
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as config_lib

DRAWS = 10_000
DRAWS_PER_PROPOSAL = 2_000


def define_flags():
    d = config_lib.preset('demo')
    command_flags.define_space_flags(command_flags.demo_space())
    command_flags.define_target_flags(macs=d.targets['macs'],
                                      params=d.targets['params'])
    flags.DEFINE_list('vital_ops', None, 'Vital ops (one per vital layer, '
                      'or "max", the default).')
    flags.DEFINE_multi_string('variants', [
        'tau_end=0.05 entropy_weight=0 slack=0 orthogonality=probabilities '
        'repair=true', ''],
                              'ProposalConfig overrides, "name=value" '
                              'separated by spaces ("" = the defaults); '
                              'repeat the flag for several.')
    flags.DEFINE_integer('seeds', 6, 'Seeds 0..n-1 per variant.',
                         lower_bound=1)
    flags.DEFINE_string('output', None, 'Also write the numbers here '
                        '(JSON).')


def parse_variant(text):
    """'tau_end=0.1 hold=0' -> {'tau_end': 0.1, 'hold': 0.0}."""
    from hournas_tf.nas import proposals

    fields = {f.name: getattr(f.type, '__name__', f.type)
              for f in dataclasses.fields(proposals.ProposalConfig)}
    overrides = {}
    for item in text.split():
        name, sep, value = item.partition('=')
        if not sep or name not in fields or name == 'seed':
            raise UserError(f'variant item {item!r} must be name=value with '
                            f'a ProposalConfig field other than seed: '
                            f'{sorted(set(fields) - {"seed"})}')
        kind = {'int': int, 'float': float, 'bool': _bool,
                'str': str}[fields[name]]
        try:
            overrides[name] = kind(value)
        except ValueError:
            raise UserError(f'variant item {item!r}: {value!r} is not a '
                            f'{fields[name]}') from None
    proposals.ProposalConfig(**overrides).check()
    return overrides


def _bool(value):
    if value.lower() not in ('true', 'false'):
        raise ValueError(value)
    return value.lower() == 'true'


def measure(table, targets, tolerance, overrides, seeds):
    """Shares of draws within `tolerance` for one variant over `seeds`."""
    import numpy as np

    from hournas_tf.nas import proposals
    from hournas_tf.resources import tables

    def share(logits, n, tau, seed):
        cols = proposals.sample_architectures(logits, n, tau, seed)
        return float(tables.within(tables.totals(table, cols), targets,
                                   tolerance).mean())

    rows = []
    for seed in seeds:
        config = proposals.ProposalConfig(seed=seed, tol=tolerance,
                                          **overrides)
        result = proposals.optimize_proposals(table, targets, config)
        tau = config.tau_end
        rows.append({
            'seed': seed, 'sample_temperature': tau,
            'share': share(result.logits, DRAWS, tau, seed + 100),
            'worst_proposal_share': min(
                share(theta, DRAWS_PER_PROPOSAL, tau, seed + 200 + j)
                for j, theta in enumerate(result.logits)),
            'distinct_argmax': len({tuple(c) for c in result.columns}),
            'mean_top_probability': proposals.mean_top_probability(
                result.logits, table.mask, tau),
            'safety_net_fired': sum(bool(r) for r in result.repaired),
            'seconds': result.seconds})
    shares = [r['share'] for r in rows]
    worst = [r['worst_proposal_share'] for r in rows]
    tops = [r['mean_top_probability'] for r in rows]
    return {'overrides': overrides, 'seeds': rows,
            'max_top_probability': max(tops),
            'mean_top_probability': float(np.mean(tops)),
            'safety_net_fired': [r['safety_net_fired'] for r in rows],
            'min_share': min(shares), 'mean_share': float(np.mean(shares)),
            'min_worst_proposal': min(worst),
            'mean_worst_proposal': float(np.mean(worst)),
            'mean_seconds': float(np.mean([r['seconds'] for r in rows]))}


def markdown(results, tolerance):
    lines = [f'| variant | share of {DRAWS:,} draws within '
             f'{tolerance:.0%}: min / mean over seeds | worst proposal: '
             'min / mean | mean top probability: mean / max | proposals '
             'the safety net changed, per seed | seconds |',
             '| --- | --- | --- | --- | --- | --- |']
    for name, r in results.items():
        lines.append(
            f'| {name or "defaults"} | {r["min_share"]:.3f} / '
            f'{r["mean_share"]:.3f} | {r["min_worst_proposal"]:.3f} / '
            f'{r["mean_worst_proposal"]:.3f} '
            f'| {r["mean_top_probability"]:.3f} / '
            f'{r["max_top_probability"]:.3f} '
            f'| {" ".join(map(str, r["safety_net_fired"]))} '
            f'| {r["mean_seconds"]:.1f} |')
    return '\n'.join(lines)


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    variants = {text: parse_variant(text) for text in f.variants}
    if f.output and not os.path.isdir(
            os.path.dirname(os.path.abspath(f.output))):
        raise UserError(f'--output={f.output}: its folder does not exist')
    targets = {obj: float(v) for obj, v in (('macs', f.target_macs),
                                            ('params', f.target_params))
               if v is not None}
    config = config_lib.SearchConfig(
        space=f.space, dataset='digits', image_size=f.image_size,
        num_classes=f.num_classes, width_multiplier=f.width_multiplier,
        targets=targets, tolerance=f.tolerance,
        vital_ops=tuple(f.vital_ops) if f.vital_ops else None)
    config_lib.check_config(config)
    from hournas_tf.nas import search_lib
    from hournas_tf.resources import tables

    search_lib.whole_space_check(spaces.get_space(
        f.space, image_size=f.image_size, num_classes=f.num_classes,
        width_multiplier=f.width_multiplier), targets)
    space, vital_ops, searched = search_lib.untrained_plan(config)
    table = tables.resource_table(space, searched, vital_ops, tuple(targets))
    results = {name: measure(table, targets, f.tolerance, overrides,
                             range(f.seeds))
               for name, overrides in variants.items()}
    print(markdown(results, f.tolerance))
    if f.output:
        jsonio.write_json(f.output, {
            'space': space.name, 'image_size': space.image_size,
            'targets': targets, 'tolerance': f.tolerance,
            'variants': results})


if __name__ == '__main__':
    define_flags()
    runner.run(main)
