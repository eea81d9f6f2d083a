"""Several budgets from one search (pure Python + numpy; TensorFlow late).

A budget is a named target set, e.g. `macs:150e6/params:3e6` (the keys of
`--target_macs`, `--target_params`, `--target_latency_ms`). One search
runs stage 1 once, fixes vital ops that keep every budget reachable,
optimizes m proposals per budget over the same non-vital layers, trains
one stage-2 supernet on draws from all budgets (`budget_supernet.py`:
each budget its own pi over its own proposals, a round robin over the
budgets, each draw kept inside its own budget) and derives one
architecture per budget with the shared supernet's weights.

`--budgets` syntax: budgets separated by `,`, targets by `/`, an optional
`name=` in front and an optional `m:N` (that budget's proposal count):
`tier1=macs:150e6/params:3e6,tier2=macs:300e6/params:4.8e6/m:4`; or a
JSON file (`*.json`): a list of {"name": ..., "macs": ..., "params": ...,
"m": ...} or {name: {"macs": ..., ...}}.
"""

import dataclasses
import json
import math
import os
import re

import numpy as np

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.nas import derive as derive_lib
from hournas_tf.nas import vital_policy
from hournas_tf.resources import tables
from hournas_tf.resources.counting import human
from hournas_tf.resources.latency import OBJECTIVE as LATENCY

OBJECTIVES = ('macs', 'params', LATENCY)  # as --target_macs ... name them
PROPOSALS_KEY = 'm'
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
BUDGETS_FILE = 'budgets.json'
BUDGETS_DIR = 'budgets'
NUM_SAMPLES = 10_000


@dataclasses.dataclass(frozen=True)
class BudgetSpec:
    """One budget: its name, targets {objective: value} and its number of
    proposals (None: the search's `num_proposals`)."""

    name: str
    targets: dict
    num_proposals: int = None

    def proposals(self, default):
        """m of this budget."""
        return default if self.num_proposals is None else self.num_proposals

    def describe(self):
        return f'{self.name!r} (' + ', '.join(
            f'{o} {human(v)}' for o, v in self.targets.items()) + ')'


def as_specs(budgets):
    """A tuple of `BudgetSpec`s from specs or their dicts (JSON)."""
    return tuple(b if isinstance(b, BudgetSpec) else BudgetSpec(**b)
                 for b in budgets)


def default_name(targets):
    """A budget's name from its targets: `macs150M_params3M`."""
    return '_'.join(f'{o}{human(v)}' for o, v in targets.items())


def _number(text, what):
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f'budget {what}: {text!r} is not a number') from None
    if not (math.isfinite(value) and value > 0):
        raise UserError(f'budget {what}: {text!r} must be > 0 and finite')
    return value


def _spec(name, items, where):
    """A BudgetSpec from (key, value) pairs; `where` names it in errors."""
    targets, m = {}, None
    for key, value in items:
        if key == PROPOSALS_KEY:
            if m is not None:
                raise UserError(f'budget {where}: m given twice')
            try:
                m = int(str(value))
            except ValueError:
                raise UserError(f'budget {where}: m={value!r} must be an '
                                'integer') from None
            continue
        if key not in OBJECTIVES:
            raise UserError(f'budget {where}: unknown objective {key!r}; '
                            f'valid: {choices(OBJECTIVES + (PROPOSALS_KEY,))}')
        if key in targets:
            raise UserError(f'budget {where}: objective {key} given twice')
        targets[key] = _number(value, f'{where} {key}')
    if not targets:
        raise UserError(f'budget {where}: no target; give e.g. '
                        'macs:300e6/params:4.8e6')
    name = default_name(targets) if name is None else name
    if not NAME.match(name):
        raise UserError(f'budget name {name!r} is not valid: letters, '
                        'digits, _ . - (up to 64, not starting with . - _)')
    return BudgetSpec(name, targets, m)


def parse_budgets(text):
    """Budgets from `--budgets` (the inline syntax or a *.json file);
    raises UserError naming the bad part."""
    text = (text or '').strip()
    if not text:
        raise UserError('--budgets is empty; give e.g. '
                        'macs:150e6/params:3e6,macs:300e6/params:4.8e6')
    if text.endswith('.json'):
        return _parse_file(text)
    budgets = []
    for k, part in enumerate(text.split(','), 1):
        part = part.strip()
        name = None
        if '=' in part:
            name, part = (s.strip() for s in part.split('=', 1))
        items = []
        for item in part.split('/'):
            if item.count(':') != 1:
                raise UserError(f'budget {k} ({part!r}): {item!r} is not '
                                'objective:value (e.g. macs:300e6)')
            key, value = (s.strip() for s in item.split(':'))
            items.append((key, value))
        budgets.append(_spec(name, items, f'{k} ({part!r})'))
    return tuple(budgets)


def _parse_file(path):
    from hournas_tf.common.jsonio import read_json

    if not os.path.isfile(path):
        raise UserError(f'--budgets file {path!r} does not exist')
    data = read_json(path, 'budgets')
    if isinstance(data, dict):
        entries = [dict(value, name=name) if isinstance(value, dict)
                   else value for name, value in data.items()]
    elif isinstance(data, list):
        entries = data
    else:
        raise UserError(f'{path!r}: budgets must be a list or an object, '
                        f'not {type(data).__name__}')
    budgets = []
    for k, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise UserError(f'{path!r}: budget {k} is not an object')
        name = entry.get('name')
        if name is not None and not isinstance(name, str):
            raise UserError(f'{path!r}: budget {k} name {name!r} is not a '
                            'string')
        items = [(key, value) for key, value in entry.items()
                 if key != 'name']
        budgets.append(_spec(name, items, f'{k} of {path!r}'))
    return tuple(budgets)


def _overlap(a, b, tolerance):
    """True when some totals are within tolerance of both target sets."""
    for obj in a.targets:
        lo = max(a.targets[obj], b.targets[obj]) * (1 - tolerance)
        hi = min(a.targets[obj], b.targets[obj]) * (1 + tolerance)
        if lo > hi:
            return False
    return True


def check_budgets(budgets, tolerance, latency_table=None):
    """Raises UserError for fewer than 2 budgets, duplicate names,
    different objectives, too few proposals, a latency budget without a
    latency table or two overlapping budgets (tolerance boxes that share
    architectures)."""
    if len(budgets) < 2:
        raise UserError(f'--budgets has {len(budgets)} budget; give at '
                        'least 2 (one: use --target_*)')
    names = [b.name for b in budgets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f'budget name {dup[0]!r} is given twice; names '
                        'must be unique')
    first = budgets[0]
    for b in budgets[1:]:
        if set(b.targets) != set(first.targets):
            raise UserError(
                f'budget {b.name!r} sets {", ".join(b.targets)} but '
                f'{first.name!r} sets {", ".join(first.targets)}; every '
                'budget must set the same objectives')
    for b in budgets:
        if b.num_proposals is not None and b.num_proposals < 1:
            raise UserError(f'too few proposals: budget {b.name!r} has '
                            f'm={b.num_proposals}; each budget needs m >= 1')
    if LATENCY in first.targets and not latency_table:
        raise UserError(f'budget {first.name!r} has a {LATENCY} target, '
                        'which needs --latency_table (build one with '
                        'tools/build_latency_table.py)')
    for i, a in enumerate(budgets):
        for b in budgets[i + 1:]:
            if _overlap(a, b, tolerance):
                raise UserError(
                    f'budgets {a.describe()} and {b.describe()} overlap '
                    f'within the {tolerance:.0%} tolerance: make them '
                    'differ by more in some objective')


def check_space(space, budgets, latency=None):
    """Raises UserError naming the first budget outside the feasible
    range of the whole space."""
    table = tables.resource_table(space, objectives=tuple(
        budgets[0].targets), latency=latency)
    for b in budgets:
        try:
            tables.check_targets(table, b.targets)
        except UserError as e:
            raise UserError(f'budget {b.name!r}: space {space.name!r} at '
                            f'image_size {space.image_size}: {e}') from None


def fit_vital_ops(space, vital_ops, budgets, probabilities=None,
                  latency=None):
    """`vital_policy.fit_vital_ops` for every budget at once: vital ops
    (and the changed layers) that keep every budget reachable. Raises
    UserError naming a budget no vital ops reach, or two budgets no one
    choice of vital ops reaches together."""
    try:
        return vital_policy.fit_vital_ops(
            space, vital_ops, [b.targets for b in budgets], probabilities,
            latency)
    except UserError:
        pass
    for b in budgets:
        try:
            vital_policy.fit_vital_ops(space, vital_ops, b.targets,
                                       probabilities, latency)
        except UserError:
            raise UserError(f'budget {b.describe()} cannot be reached with '
                            'any choice of vital ops') from None
    for i, a in enumerate(budgets):
        for b in budgets[i + 1:]:
            try:
                vital_policy.fit_vital_ops(space, vital_ops,
                                           [a.targets, b.targets],
                                           probabilities, latency)
            except UserError:
                raise UserError(
                    f'budgets {a.describe()} and {b.describe()} cannot both '
                    'be reached with one choice of vital ops (stage 1 '
                    'fixes them for every budget); search them '
                    'separately') from None
    raise UserError('the budgets cannot all be reached with one choice of '
                    'vital ops; search them separately')


@dataclasses.dataclass(frozen=True)
class BudgetProposals:
    """The proposals of every budget: `logits` (M, rows, cols), `owner`
    (M,) the budget of each, `results` one `ProposalResult` per budget."""

    logits: np.ndarray
    owner: np.ndarray
    results: tuple

    def of(self, b):
        """The indices of budget `b`'s proposals."""
        return np.flatnonzero(self.owner == b)


def optimize_proposals(table, budgets, pconfig):
    """`proposals.optimize_proposals` per budget (m of its own, seeds
    apart); returns `BudgetProposals`."""
    from hournas_tf.nas import proposals

    results, owner = [], []
    for b, spec in enumerate(budgets):
        config = dataclasses.replace(
            pconfig, num_proposals=spec.proposals(pconfig.num_proposals),
            seed=pconfig.seed + 100_000 * b)
        results.append(proposals.optimize_proposals(table, spec.targets,
                                                    config))
        owner += [b] * config.num_proposals
    return BudgetProposals(
        np.concatenate([r.logits for r in results]).astype(np.float32),
        np.asarray(owner, np.int32), tuple(results))


def proposal_report(table, budgets, result, tolerance, tau, seed,
                    pi=None):
    """Per budget: each proposal's most probable architecture (totals,
    relative errors, within tolerance, before any repair) and the share of
    `NUM_SAMPLES` draws at `tau` from its own proposals (weighted by `pi`,
    the flat (M,) proposal probabilities; default uniform per budget)
    within tolerance of its own targets."""
    from hournas_tf.nas.proposals import sample_architectures

    mask = np.asarray(table.mask, bool)
    report = []
    for b, spec in enumerate(budgets):
        idx = result.of(b)
        logits = result.logits[idx]
        rows = []
        for j, theta in zip(idx, logits):
            cols = np.where(mask, theta, -np.inf).argmax(-1)
            tot = tables.totals(table, cols[None])
            errs = tables.relative_errors(
                {o: float(tot[o][0]) for o in spec.targets}, spec.targets)
            rows.append({'proposal': int(j),
                         **{o: float(tot[o][0]) for o in spec.targets},
                         **{f'{o}_error': e for o, e in errs.items()},
                         'within_tolerance': all(
                             abs(e) <= tolerance for e in errs.values())})
        weights = None if pi is None else np.asarray(pi)[idx]
        cols = sample_architectures(logits, NUM_SAMPLES, tau, seed + b,
                                    pi=weights)
        ok = tables.within(tables.totals(table, cols), spec.targets,
                           tolerance)
        report.append({'budget': spec.name, 'targets': spec.targets,
                       'proposals': rows,
                       'share_within_tolerance': float(ok.mean()),
                       'sample_temperature': tau})
    return report


def budget_pi(pi_logits, owner, b):
    """softmax of budget `b`'s proposal logits (its own pi)."""
    logits = np.asarray(pi_logits, np.float64)[np.asarray(owner) == b]
    e = np.exp(logits - logits.max())
    return e / e.sum()


def derive(space, table, searched, fixed_ops, budgets, per_proposal,
           pi_logits, owner, tolerance, repair=True, mode='in_budget',
           seed=0):
    """One `derive.Derived` per budget: its most probable proposal (its
    own pi), then that proposal's most probable architecture within
    tolerance of the budget's targets (`mode` 'in_budget', else its
    row-wise argmax), repaired if `repair` and it misses. `per_proposal`
    (M, rows, cols) are the proposals' op probabilities. The entry adds
    `budget`, `targets`, `proposal` (flat index), `probability` and
    `architecture`."""
    per_proposal = np.asarray(per_proposal, np.float64)
    owner = np.asarray(owner)
    found = []
    for b, spec in enumerate(budgets):
        idx = np.flatnonzero(owner == b)
        pi = budget_pi(pi_logits, owner, b)
        best = int(idx[np.argmax(pi)])
        probs = per_proposal[best]
        columns = probs.argmax(-1)
        if mode == 'in_budget':
            inside = derive_lib.most_probable_in_budget(
                table, probs, spec.targets, tolerance, seed + b)
            columns = columns if inside is None else inside
        one = derive_lib.derive_one(space, table, searched, fixed_ops,
                                    columns, probs, spec.targets, tolerance,
                                    repair)
        arch = dataclasses.replace(one.arch,
                                   name=f'{space.name}_{spec.name}')
        entry = {'budget': spec.name, 'targets': dict(spec.targets),
                 'proposal': best, 'probability': float(pi.max()),
                 'budget_proposal_probabilities': [float(p) for p in pi],
                 'architecture': arch.to_string(), **one.entry}
        found.append(derive_lib.Derived(arch, entry))
    return found


def arch_path(output_dir, name):
    """budgets/<name>/arch.json of a run."""
    return os.path.join(output_dir, BUDGETS_DIR, name, 'arch.json')


def table_rows(derived, accuracies=None):
    """The rows of budgets.json: per budget its targets, achieved values,
    relative errors before and after repair, the architecture and its
    inherited-weight accuracy (`accuracies` {name: value}), cheapest
    first as given."""
    rows = []
    for d in derived:
        e = d.entry
        rows.append({
            'budget': e['budget'], 'targets': e['targets'],
            'achieved': e['achieved'],
            'relative_error': e['relative_error'],
            'within_tolerance': e['within_tolerance'],
            'before_repair': {
                'relative_error': e['before_repair']['relative_error'],
                'within_tolerance': e['before_repair']['within_tolerance']},
            'repaired_layers': e['repaired_layers'],
            'architecture': e['architecture'],
            'arch_file': os.path.join(BUDGETS_DIR, e['budget'],
                                      'arch.json'),
            'inherited_accuracy': (accuracies or {}).get(e['budget']),
        })
    return rows


def write_table(output_dir, rows, extra=None):
    """Writes <output_dir>/budgets.json: {'budgets': rows, **extra}."""
    path = os.path.join(output_dir, BUDGETS_FILE)
    with open(path, 'w') as f:
        json.dump({'budgets': rows, **(extra or {})}, f, indent=2)
        f.write('\n')
    return path


def read_table(run_dir):
    """budgets.json of a run, or None without one."""
    from hournas_tf.common.jsonio import read_json

    path = os.path.join(run_dir, BUDGETS_FILE)
    return read_json(path, 'budgets table') if os.path.isfile(path) \
        else None
