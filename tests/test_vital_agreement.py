"""Does stage 1 choose its vital ops for a reason? (vital_agreement)."""

import numpy as np
import pytest

from hournas_tf import spaces
from hournas_tf.experiments import ablation_report
from hournas_tf.experiments import vital_agreement as va

SPACE = 'efficientnet[image_size=32,num_classes=10,width_multiplier=0.5]'


def space():
    return spaces.get_space('efficientnet', image_size=32, num_classes=10,
                            width_multiplier=0.5)


def cell(seed, vital_ops, variant='hournas'):
    """A cell whose vital layers have `vital_ops` and every other layer
    its first candidate."""
    s = space()
    ops = [layer.candidates[0] for layer in s.layers]
    for i, op in zip(s.vital_layers, vital_ops):
        ops[i] = op
    return {'variant': variant, 'seed': seed,
            'architecture': f'{SPACE}:' + ','.join(ops)}


def test_vital_ops_by_seed_reads_the_vital_layers_of_the_architecture():
    s = space()
    first = s.layers[s.vital_layers[0]].candidates
    ops, counts = va.vital_ops_by_seed(
        [cell(3, [first[1]] * 7), {'seed': 4}])  # no architecture: left out
    assert list(ops) == [3] and ops[3] == (first[1],) * len(s.vital_layers)
    assert counts == tuple(len(s.layers[i].candidates)
                           for i in s.vital_layers)


def test_pair_agreement_by_hand():
    # Layer 0: seeds 0 and 1 agree (1 of 3 pairs); layer 1: seeds 1 and 2.
    codes = [[0, 1], [0, 2], [1, 2]]
    assert va._pair_agreement(codes, 3) == pytest.approx(1 / 3)
    batch = np.array([codes, [[0, 0], [0, 0], [0, 0]]])
    assert va._pair_agreement(batch, 3) == pytest.approx([1 / 3, 1.0])


def test_seeds_that_always_agree_are_not_chance():
    ops = {s: ('a', 'b', 'c') for s in range(10)}
    stat = va.across_seeds(ops, (4, 4, 4), draws=2000)
    assert stat['agreement'] == 1.0 and stat['modal_share'] == 1.0
    assert stat['chance'] == pytest.approx(0.25)
    assert stat['p'] == pytest.approx(1 / 2001)


def test_uniform_picks_look_like_chance():
    rng = np.random.default_rng(1)
    names = ['w', 'x', 'y', 'z']
    ops = {s: tuple(names[i] for i in rng.integers(0, 4, 7))
           for s in range(10)}
    stat = va.across_seeds(ops, (4,) * 7, draws=2000)
    assert abs(stat['agreement'] - 0.25) < 0.08
    assert stat['p'] > 0.05
    assert va.across_seeds({0: ('w',)}, (4,)) is None  # one seed


def test_same_seed_pairs_the_seeds():
    a = {s: (f'op{s % 4}', f'op{(s + 1) % 4}') for s in range(8)}
    stat = va.same_seed(a, dict(a), permutations=2000)
    assert stat['agreement'] == 1.0 and stat['seeds'] == 8
    assert stat['shuffled'] < 0.5 and stat['p'] < 0.01
    shifted = {s: a[(s + 1) % 8] for s in a}  # the same ops, other seeds
    stat = va.same_seed(a, shifted, permutations=2000)
    assert stat['agreement'] == 0.0 and stat['p'] == 1.0
    assert va.same_seed(a, {0: a[0]}) is None  # one common seed


def test_analyze_leaves_out_the_rows_that_copy_the_vital_ops():
    s = space()
    cands = [s.layers[i].candidates for i in s.vital_layers]
    pick = [[c[(seed + j) % len(c)] for j, c in enumerate(cands)]
            for seed in range(4)]
    results = {
        'hournas': [cell(k, pick[k]) for k in range(4)],
        'm1': [cell(k, pick[k], 'm1') for k in range(4)],
        'no_stage2': [cell(k, pick[k], 'no_stage2') for k in range(4)],
        'random': [cell(k, pick[(k + 1) % 4], 'random') for k in range(4)],
    }
    out = va.analyze(results)
    assert set(out['across_seeds']) == {'hournas', 'm1', 'random'}
    assert set(out['same_seed']) == {'m1', 'random'}
    assert out['same_seed']['m1']['agreement'] == 1.0
    assert out['same_seed']['random']['agreement'] == 0.0
    assert va.analyze({'hournas': [{'seed': 0}]}) == {}
    text = va.lines(out, {'m1': 'm=1'})
    assert len(text) == 5
    assert text[3].startswith('m=1 against the default, same seed: 100% ')


def test_the_ablation_page_carries_the_agreement():
    s = space()
    cands = [s.layers[i].candidates for i in s.vital_layers]
    results = {'hournas': [dict(
        cell(k, [c[k % 2] for c in cands]), test_accuracy=0.9,
        search_seconds=1.0, achieved={'macs': 1.0}, within_tolerance=True,
        relative_error={'macs': 0.0}, before_repair_within_tolerance=True,
        job_wall_seconds=1.0, job_cpu_seconds=1.0) for k in range(3)]}
    data = dict(ablation_report.analyze(results, {'macs': 1.0}),
                results=results, command='c', job_wall_seconds=3.0,
                job_cpu_seconds=3.0, started='2026-01-01T10:00:00',
                written='2026-01-01T11:00:00',
                machine={'cpus': 2, 'load_average': [1.0], 'python': '3',
                         'tensorflow': '2', 'keras': '3', 'commit': 'abc'})
    assert data['vital_agreement']['across_seeds']['hournas']['seeds'] == 3
    md = ablation_report.markdown(ablation_report.table_config(
        dict(data, seeds=[0, 1, 2], search_config={'targets': {
            'macs': 1.0}})), data)
    assert ('- HourNAS (m=8, Gumbel-Max, vital first): across its 3 seeds, '
            '33% of (seed pair, vital layer) share the op') in md
