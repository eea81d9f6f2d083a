"""experiments/paired.py: paired comparisons and the Holm correction."""

import math

import pytest
from scipy import stats

from hournas_tf.experiments import paired

# Paired measurements (seed -> value) with a clear, uneven difference.
A = {0: 0.91, 1: 0.88, 2: 0.95, 3: 0.90, 4: 0.93, 5: 0.89, 6: 0.94}
B = {0: 0.89, 1: 0.87, 2: 0.90, 3: 0.86, 4: 0.93, 5: 0.84, 6: 0.91,
     9: 0.5}  # seed 9 has no partner: left out


def test_compare_matches_scipy_on_known_data():
    c = paired.compare(A, B)
    seeds = sorted(A)
    a, b = [A[s] for s in seeds], [B[s] for s in seeds]
    d = [x - y for x, y in zip(a, b)]
    assert c['seeds'] == seeds and c['n'] == 7 and c['df'] == 6
    assert c['mean_difference'] == pytest.approx(sum(d) / 7)
    assert c['sd_difference'] == pytest.approx(stats.tstd(d))
    t = stats.ttest_rel(a, b)
    assert c['t'] == pytest.approx(t.statistic)
    assert c['t_p'] == pytest.approx(t.pvalue)
    low, high = stats.t.interval(0.95, 6, loc=sum(d) / 7,
                                 scale=stats.sem(d))
    assert (c['ci_low'], c['ci_high']) == (pytest.approx(low),
                                           pytest.approx(high))
    assert c['wilcoxon_p'] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert c['t_note'] is None
    # 6 nonzero differences: the exact p can reach 2/64 < 0.05.
    assert c['wilcoxon_note'] is None
    # The order of the rows flips the sign, not the p-values.
    r = paired.compare(B, A)
    assert r['mean_difference'] == pytest.approx(-c['mean_difference'])
    assert r['t_p'] == pytest.approx(c['t_p'])
    assert r['ci_low'] == pytest.approx(-c['ci_high'])


def test_compare_by_hand_on_three_pairs():
    # d = 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3), df 2.
    c = paired.compare({0: 3, 1: 5, 2: 7}, {0: 2, 1: 3, 2: 4})
    assert c['mean_difference'] == 2 and c['sd_difference'] == 1
    assert c['t'] == pytest.approx(2 * math.sqrt(3))
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) = 4.3027
    assert c['ci_low'] == pytest.approx(2 - half)
    assert c['ci_high'] == pytest.approx(2 + half)
    # Exact signed-rank test, all three positive: p = 2 / 8.
    assert c['wilcoxon_p'] == pytest.approx(0.25)
    assert 'cannot fall below 0.25' in c['wilcoxon_note']


@pytest.mark.parametrize('a, b, t_note, w_note', [
    ({}, {0: 1.0}, 'no seed in both rows', 'no seed in both rows'),
    ({0: 1.0}, {0: 0.5}, 'one paired seed', 'one paired seed'),
    ({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}, 'the t-test is undefined',
     'every paired difference is zero'),
    ({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0}, 'the t-test is undefined',
     'cannot fall below 0.5'),
])
def test_compare_says_why_a_test_gives_no_p(a, b, t_note, w_note):
    c = paired.compare(a, b)
    assert c['t_p'] is None and t_note in c['t_note']
    assert w_note in c['wilcoxon_note']
    if 'zero' in w_note or 'seed' in w_note:
        assert c['wilcoxon_p'] is None


def test_wilcoxon_smallest_p_is_the_exact_distributions():
    for n in (3, 5, 6, 8):
        d = [float(k + 1) for k in range(n)]  # all positive, no ties
        exact = stats.wilcoxon(d, method='exact').pvalue
        assert paired.wilcoxon_smallest_p(n) == pytest.approx(exact)
    assert paired.wilcoxon_smallest_p(1) == 1.0


def test_holm_on_a_textbook_example():
    # Four hypotheses: sorted 0.005, 0.01, 0.03, 0.04 are multiplied by
    # 4, 3, 2, 1 and made monotone: 0.02, 0.03, 0.06, 0.06.
    adjusted = paired.holm({'a': 0.01, 'b': 0.04, 'c': 0.03, 'd': 0.005,
                            'e': None})
    assert adjusted == {'a': pytest.approx(0.03), 'b': pytest.approx(0.06),
                        'c': pytest.approx(0.06), 'd': pytest.approx(0.02),
                        'e': None}
    assert paired.holm({'x': 0.6, 'y': 0.7}) == {'x': 1.0, 'y': 1.0}
    assert paired.holm({}) == {}


def test_differences_pair_by_seed():
    assert paired.differences({2: 1.0, 0: 3.0}, {0: 1.0, 1: 0.0, 2: 0.5}) \
        == ([0, 2], [2.0, 0.5])
