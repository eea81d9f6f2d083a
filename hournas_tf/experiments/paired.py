"""Paired comparisons of two rows of the ablation over the seeds both
have, and the Holm correction across rows (scipy).

A row's value for seed s is paired with the other row's for the same s:
one seed gives every row the same data order and retraining seed, so the
difference removes what the seed shares. `compare` gives the mean paired
difference with its t-distribution confidence interval, the paired
t-test's and the Wilcoxon signed-rank test's two-sided p-values and the
degrees of freedom; a test that cannot be computed gives None and says
why (`*_note`). `holm` adjusts a family of p-values (Holm 1979).
"""

import math

CONFIDENCE = 0.95
ALPHA = 0.05


def differences(a, b):
    """(seeds, [a[s] - b[s]]) over the seeds both {seed: value} dicts
    have, in seed order."""
    seeds = sorted(set(a) & set(b))
    return seeds, [float(a[s]) - float(b[s]) for s in seeds]


def compare(a, b, confidence=CONFIDENCE):
    """Row `a` against row `b` ({seed: value} each), paired by seed: a
    dict with `n`, `seeds`, `mean_difference` (a - b), `sd_difference`,
    `ci_low`/`ci_high` (the `confidence` interval of the mean, t with
    n - 1 degrees of freedom), `df`, `t`, `t_p` and `wilcoxon_p`
    (two-sided), and `t_note`/`wilcoxon_note` (None, or why the test
    gives no p-value, or why its p-value cannot be small)."""
    from scipy import stats

    seeds, d = differences(a, b)
    n = len(d)
    out = {'n': n, 'seeds': seeds, 'mean_difference': None,
           'sd_difference': None, 'ci_low': None, 'ci_high': None,
           'df': n - 1 if n else None, 't': None, 't_p': None,
           't_note': None, 'wilcoxon_p': None, 'wilcoxon_note': None}
    if n == 0:
        out['t_note'] = out['wilcoxon_note'] = 'no seed in both rows'
        return out
    mean = math.fsum(d) / n
    out['mean_difference'] = mean
    if n < 2:
        out['t_note'] = out['wilcoxon_note'] = (
            'one paired seed: no spread to test against')
        return out
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))
    out['sd_difference'] = sd
    if sd == 0:
        out['ci_low'] = out['ci_high'] = mean
        out['t_note'] = ('every paired difference is the same: the t-test '
                         'is undefined')
    else:
        se = sd / math.sqrt(n)
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
        out['ci_low'], out['ci_high'] = mean - half, mean + half
        test = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
        out['t'], out['t_p'] = float(test.statistic), float(test.pvalue)
    nonzero = [x for x in d if x != 0]
    if not nonzero:
        out['wilcoxon_note'] = 'every paired difference is zero'
        return out
    out['wilcoxon_p'] = float(stats.wilcoxon(d).pvalue)
    smallest = wilcoxon_smallest_p(len(nonzero))
    if smallest > ALPHA:
        out['wilcoxon_note'] = (
            f'{len(nonzero)} nonzero differences: the exact two-sided p '
            f'cannot fall below {smallest:.3g}')
    return out


def wilcoxon_smallest_p(n):
    """The smallest two-sided p-value of the exact signed-rank test with
    `n` nonzero differences without ties: 2 / 2^n (capped at 1)."""
    return min(1.0, 2.0 / 2 ** n)


def holm(pvalues):
    """Holm's step-down adjustment of {name: p} (None entries stay None
    and are not in the family): p_(i) of m sorted p-values becomes
    max over j <= i of min(1, (m - j + 1) p_(j))."""
    tested = sorted((p, name) for name, p in pvalues.items()
                    if p is not None)
    m = len(tested)
    out = {name: None for name in pvalues}
    running = 0.0
    for j, (p, name) in enumerate(tested):
        running = max(running, min(1.0, (m - j) * p))
        out[name] = running
    return out
