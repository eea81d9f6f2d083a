"""Do the tests catch a break? Hand-written mutations, each run against the
tests that must fail.

    python -m tools.break_tests              # the fast mutations
    python -m tools.break_tests --large      # and the large lane's
    python -m tools.break_tests --only=within-one-sided,kept-share-formula
    python -m tools.break_tests --list       # the mutations; runs nothing
    python -m tools.break_tests --output=/tmp/break.md  # + /tmp/break.json

Each `Mutation` is a small source change that breaks one feature (`old`,
which must occur exactly once in `path`, becomes `new`) and the tests that
must catch it. For each one the tool copies the repository (without .git,
.venv, runs/ and caches) into a temporary folder, applies the change there
and runs `python -m pytest -q -p no:cacheprovider -x TESTS` in the copy,
with PYTHONPATH the copy (the commands the tests start import it too;
`--run_large` for a mutation of the large lane). Exit code 1: caught;
0: MISSED (the tests passed on broken code); anything else: error (a
collection or usage error, a timeout), not counted as caught. It prints a
line per mutation and a markdown table, and exits 0 when every mutation
run was caught, 1 otherwise. A mutation whose `old` text is gone (the code
was refactored) is an error naming it: update the mutation.
"""

import dataclasses
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags

from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Never copied: the repository's history, the environment, run outputs and
# caches (tests read docs/ and configs/, which are copied).
EXCLUDE = ('.git', '.venv', 'runs', '__pycache__', '.pytest_cache')

CAUGHT, MISSED, ERROR = 'caught', 'MISSED', 'error'


@dataclasses.dataclass(frozen=True)
class Mutation:
    """A source change that breaks one feature, and the tests (pytest node
    ids) that must fail on it."""

    name: str          # a short slug
    path: str          # file relative to the repository root
    old: str           # exact source text, present exactly once
    new: str           # its replacement
    tests: tuple       # pytest node ids
    why: str           # one line: which feature it breaks
    large: bool = False  # the tests are in the large lane


MUTATIONS = (
    # --- fast lane -----------------------------------------------------------
    Mutation(
        name='shared-body-skips-squeeze-excite',
        path='hournas_tf/blocks/layers.py',
        old='            x = _raw_squeeze_excite(self.se, x, tensors[:4])\n',
        new='            x = x * 1.0  # squeeze-excite left out\n',
        tests=('tests/test_layers.py::test_raw_train_call_is_the_keras_'
               'training_call',
               'tests/test_mixed.py::test_branches_sharing_a_structure_give_'
               'the_switch_values'),
        why="the raw (and shared) body of a block leaves its squeeze-excite "
            "out"),
    Mutation(
        name='shared-body-se-bias-dropped',
        path='hournas_tf/blocks/layers.py',
        old=('    s = _raw_conv(s, expand_kernel, 1, 1) + '
             'tf.reshape(expand_bias,\n'),
        new=('    s = _raw_conv(s, expand_kernel, 1, 1) + 0 * '
             'tf.reshape(expand_bias,\n'),
        tests=('tests/test_layers.py::test_raw_train_call_is_the_keras_'
               'training_call',),
        why="the raw squeeze-excite leaves its expand bias out"),
    Mutation(
        name='skip-fits-any-layer',
        path='hournas_tf/spaces/space.py',
        old='        if op not in allowed:\n',
        new="        if op not in allowed and op != 'skip':\n",
        tests=('tests/test_train.py::test_fit_architecture',),
        why='skip is accepted on a layer with stride 2 or a channel change, '
            'so a 32-px architecture rebuilt at 224 px is not refused'),
    Mutation(
        name='repair-returns-unrepaired',
        path='hournas_tf/nas/repair.py',
        old='    return columns, changed\n',
        new='    return original, changed\n',
        tests=('tests/test_proposals.py::test_repair_fixes_an_off_architecture',
               'tests/test_proposals.py::test_safety_net_repairs_short_'
               'optimizations'),
        why='repair reports its changes but returns the unrepaired columns'),
    Mutation(
        name='vital-agreement-unpaired',
        path='hournas_tf/experiments/vital_agreement.py',
        old='    y = np.asarray([b[s] for s in common])\n',
        new='    y = np.asarray([b[s] for s in reversed(common)])\n',
        tests=('tests/test_vital_agreement.py::test_same_seed_pairs_the_'
               'seeds',),
        why="two rows' vital ops compared across different seeds"),
    Mutation(
        name='retraining-noise-unremoved',
        path='hournas_tf/experiments/rank_correlation.py',
        old='    true_var = max(0.0, means_var - noise_var / num_seeds)\n',
        new='    true_var = means_var\n',
        tests=('tests/test_rank_correlation.py::test_retraining_noise_by_'
               'hand',),
        why="the architectures' spread keeps the retraining noise in it"),
    Mutation(
        name='rank-second-seed-is-the-first',
        path='hournas_tf/experiments/rank_correlation.py',
        old=("    name = 'train' if seed == config.seed else "
             "f'train_seed{seed}'\n"),
        new="    name = 'train'\n",
        tests=('tests/test_rank_correlation.py::test_collect_takes_the_mean_'
               'of_the_seeds_and_their_noise',),
        why='every retraining seed reads and writes the first seed\'s '
            'folder'),
    Mutation(
        name='kept-share-formula',
        path='hournas_tf/nas/proposal_report.py',
        old='    return float(1.0 - (1.0 - share) ** budget_draws)\n',
        new='    return float(share)\n',
        tests=('tests/test_search.py::test_kept_share_is_the_chance_of_one_'
               'hit_in_k_draws',),
        why='the share of steps that keep a draw within tolerance ignores '
            'the K draws per step'),
    Mutation(
        name='mac-count-skips-first-layer',
        path='hournas_tf/resources/counting.py',
        old='        out = self.stem + self.head + self.classifier\n'
            '        for c in self.layers:\n',
        new='        out = self.stem + self.head + self.classifier\n'
            '        for c in self.layers[1:]:\n',
        tests=('tests/test_counting.py::test_fbnet_model_zoo_numbers',),
        why='the MAC and parameter totals leave out the first searched layer'),
    Mutation(
        name='within-one-sided',
        path='hournas_tf/resources/tables.py',
        old='        ok = ok & (np.abs(np.asarray(totals_[objective]) '
            '- target)\n',
        new='        ok = ok & ((np.asarray(totals_[objective]) - target)\n',
        tests=('tests/test_budget.py::test_within_tolerance_equals_the_exact_'
               'check_on_every_architecture',),
        why='the budget tolerance check accepts any total below the target'),
    Mutation(
        name='latency-calibration-scale',
        path='hournas_tf/resources/latency.py',
        old="    return {'a': float(a), 'b': float(b), 'r2': r2,\n",
        new="    return {'a': 1.1 * float(a), 'b': float(b), 'r2': r2,\n",
        tests=('tests/test_latency.py::test_calibration_fit_and_errors',),
        why='the latency calibration scales the sum of entries 10% too high'),
    Mutation(
        name='latency-prediction-uncalibrated',
        path='hournas_tf/resources/latency.py',
        old='        return a * self.sum_ms(ops) + b\n',
        new='        return self.sum_ms(ops) + b\n',
        tests=('tests/test_latency.py::test_prediction_is_the_sum_of_entries_'
               'and_skip_is_free',),
        why="a table's prediction ignores its calibration's scale"),
    Mutation(
        name='user-error-traceback',
        path='hournas_tf/common/runner.py',
        old='        except UserError as e:\n            fail(str(e))\n',
        new='        except UserError:\n            raise\n',
        tests=('tests/test_errors.py::test_a_user_error_is_the_only_line_on_'
               'stderr',),
        why='a UserError ends a command with a traceback instead of one '
            '`error:` line and exit 2'),
    Mutation(
        name='user-error-traceback-commands',
        path='hournas_tf/common/runner.py',
        old='        except UserError as e:\n            fail(str(e))\n',
        new='        except UserError:\n            raise\n',
        tests=('tests/test_train.py::test_bad_input_is_one_line_and_exit_2',
               'tests/test_resilience.py::test_resume_mistakes_are_one_line_'
               'errors'),
        why='as user-error-traceback, caught by the commands\' own refusal '
            'tests (check_refused)'),
    Mutation(
        name='straight-through-no-gradient',
        path='hournas_tf/nas/sampling.py',
        old='            weights = hard + (soft - tf.stop_gradient(soft))\n',
        new='            weights = hard\n',
        tests=('tests/test_supernet.py::test_zero_initialized_stage2_rows_get_'
               'a_gradient_once_trained',
               'tests/test_supernet.py::test_every_nonvital_fbnet_layer_gets_'
               'a_cross_entropy_gradient'),
        why='gumbel_max draws pass no gradient to the architecture '
            'parameters (no straight-through estimator)'),
    Mutation(
        name='resume-refuses-repeated-flags',
        path='hournas_tf/search.py',
        old='        values = _stored_and_given(f, name, config)\n',
        new='        values = None\n',
        tests=('tests/test_resilience.py::test_resume_accepts_the_command_it_'
               'resumes',),
        why='--resume refuses any flag of the command it resumes'),
    Mutation(
        name='benchmark-input-consumption',
        path='hournas_tf/benchmarking/figures.py',
        old="            consumption = 2 * p['batch_size'] / med\n",
        new="            consumption = p['batch_size'] / med\n",
        tests=('tests/test_benchmark.py::test_figures_of_the_proposals_and_'
               'the_input_pipeline',),
        why='figure g counts the weight batch of a stage-2 step but not its '
            'architecture batch'),
    Mutation(
        name='benchmark-proposal-share',
        path='hournas_tf/benchmarking/figures.py',
        old="            f'{p[\"tolerance\"]:.0%} of every target', "
            "r['share_within'], '',\n",
        new="            f'{p[\"tolerance\"]:.0%} of every target', "
            "1 - r['share_within'], '',\n",
        tests=('tests/test_benchmark.py::test_figures_of_the_proposals_and_'
               'the_input_pipeline',),
        why='figure e reports the share of draws outside the tolerance'),
    # --- large lane ----------------------------------------------------------
    Mutation(
        name='sigterm-writes-no-checkpoint',
        path='hournas_tf/nas/checkpointing.py',
        old='        elif force or preempted or step % self.every == 0:\n'
            '            path = self.checkpoint.save()\n'
            '            self._saved = step\n',
        new='        elif force or step % self.every == 0:\n'
            '            path = self.checkpoint.save()\n'
            '            self._saved = step\n'
            '        elif preempted:\n'
            '            path = (self.checkpoint.paths() or [None])[0]\n',
        tests=('tests/test_resilience.py::test_sigterm_writes_a_checkpoint_'
               'and_exits_0',),
        why='SIGTERM stops the search without writing a checkpoint',
        large=True),
    Mutation(
        name='train-resume-ignores-backup',
        path='hournas_tf/training/callbacks.py',
        old='    def on_epoch_end(self, epoch, logs=None):\n'
            '        super().on_epoch_end(epoch, logs)\n'
            '        self.save()\n',
        new='    def on_train_begin(self, logs=None):\n'
            '        pass  # the backup is never restored\n\n'
            '    def on_epoch_end(self, epoch, logs=None):\n'
            '        super().on_epoch_end(epoch, logs)\n'
            '        self.save()\n',
        tests=('tests/test_resilience.py::test_train_killed_mid_epoch_'
               'resumes',),
        why='a killed training run restarts from scratch instead of its '
            'backup', large=True),
    Mutation(
        name='best-checkpoint-not-recalibrated',
        path='hournas_tf/training/train_lib.py',
        old='            checkpoint = keras.saving.load_model(path)\n'
            '            _recalibrate(checkpoint, arch, train, config)\n',
        new='            checkpoint = keras.saving.load_model(path)\n',
        tests=('tests/test_train.py::test_an_earlier_best_checkpoint_is_'
               'recalibrated',),
        why='an earlier best.keras is saved with the batch-norm statistics '
            'fit left', large=True),
    Mutation(
        name='replica-loss-scale-1e-8',
        path='hournas_tf/nas/supernet.py',
        old='        scale = 1.0 / replicas\n',
        new='        scale = (1.0 + 1e-8 * (replicas - 1)) / replicas\n',
        tests=('tests/test_distribute.py::test_one_search_step_on_two_'
               'replicas_equals_one_device',),
        why='the per-replica loss scale of the search step is off by 1e-8 '
            '(relative) on two replicas', large=True),
    Mutation(
        name='search-resume-restarts-stage',
        path='hournas_tf/nas/checkpointing.py',
        old='        return int(supernet.step.numpy())\n',
        new='        return 0\n',
        tests=('tests/test_distribute.py::test_mirrored_search_killed_in_'
               'stage_1_resumes',),
        why='a resumed search restores its stage but runs it again from '
            'its first step (two replicas, stage 1)', large=True),
    Mutation(
        name='search-resume-restarts-stage-sigkill',
        path='hournas_tf/nas/checkpointing.py',
        old='        return int(supernet.step.numpy())\n',
        new='        return 0\n',
        tests=('tests/test_resilience.py::test_sigkill_in_stage_2_then_'
               'resume_equals_an_unbroken_run',),
        why='as search-resume-restarts-stage, on one device', large=True),
    Mutation(
        name='latency-table-calibrated-wrong',
        path='tools/build_latency_table.py',
        old="            [t['median_ms'] for t in "
            "timings[:len(calibration)]])\n",
        new="            [2 * t['median_ms'] for t in "
            "timings[:len(calibration)]])\n",
        tests=('tests/test_latency.py::test_build_latency_table_measures_'
               'calibrates_and_evaluates',),
        why='the calibration is fit to twice the measured latencies',
        large=True),
    Mutation(
        name='train-resume-ignores-backup-in-process',
        path='hournas_tf/training/callbacks.py',
        old='    def on_epoch_end(self, epoch, logs=None):\n'
            '        super().on_epoch_end(epoch, logs)\n'
            '        self.save()\n',
        new='    def on_train_begin(self, logs=None):\n'
            '        pass  # the backup is never restored\n\n'
            '    def on_epoch_end(self, epoch, logs=None):\n'
            '        super().on_epoch_end(epoch, logs)\n'
            '        self.save()\n',
        tests=('tests/test_train.py::test_interrupted_run_resumes_where_it_'
               'stopped',),
        why='as train-resume-ignores-backup, in process (run_training '
            'interrupted)', large=True),
    Mutation(
        name='search-resume-ignores-checkpoint',
        path='hournas_tf/nas/search_lib.py',
        old='        found = checkpoint.latest()\n',
        new='        found = None\n',
        tests=('tests/test_resilience.py::test_sigkill_in_stage_2_then_'
               'resume_equals_an_unbroken_run',),
        why='--resume ignores the checkpoints and starts stage 2 afresh',
        large=True),
    Mutation(
        name='kept-share-not-used',
        path='hournas_tf/nas/search_lib.py',
        old="            end['share_within_tolerance'], config.budget_draws)\n",
        new="            end['share_within_tolerance'], 1)\n",
        tests=('tests/test_search.py::test_search_end_to_end_on_digits',),
        why="the search reports the kept share of one draw per step, not "
            "of --budget_draws", large=True),
    Mutation(
        name='restore-overwrites-cells',
        path='hournas_tf/experiments/ablation_restore.py',
        old='        if ablation.is_done(config, variant, seed):\n'
            '            continue\n',
        new='',
        tests=('tests/test_ablation_restore.py::test_restored_cells_are_'
               'finished_cells_and_kept_ones_stay',),
        why='--restore_cells overwrites a finished cell of the run'),
    Mutation(
        name='best-of-k-picks-the-worst',
        path='hournas_tf/experiments/ablation.py',
        old='            best = max(range(len(archs)), key=lambda k: '
            'scores[k])\n',
        new='            best = min(range(len(archs)), key=lambda k: '
            'scores[k])\n',
        tests=('tests/test_ablate.py::test_quick_mode_runs_every_searched_'
               'row_and_rewrites_its_table',),
        why='best-of-k retrains the candidate the supernet scores lowest',
        large=True),
    Mutation(
        name='both-lanes-unordered',
        path='tests/conftest.py',
        old='        items[:] = large_first(items)\n',
        new='',
        tests=('tests/test_lanes.py::test_both_lanes_run_every_test_once_'
               'with_the_large_ones_first',),
        why='with both lanes in one session the large tests no longer '
            'start first (one worker would idle behind the last of them)'),
)


def define_flags():
    flags.DEFINE_list('only', None, 'Run only these mutations (names, comma '
                      'separated; see --list).')
    flags.DEFINE_bool('large', False, 'Also run the mutations whose tests '
                      'are in the large lane (minutes each).')
    flags.DEFINE_bool('list', False, 'Print the mutations and run nothing.')
    flags.DEFINE_string('output', None, 'Also write the table here (a .md '
                        'file) and every result next to it (.json).')
    flags.DEFINE_bool('keep', False, 'Keep the mutated copies (their paths '
                      'are printed).')
    flags.DEFINE_integer('timeout', 3600, 'Seconds allowed per mutation '
                         '(then: error).', lower_bound=1)


def check_fresh(mutation, root):
    """Raises UserError unless `mutation.old` occurs exactly once in
    `root/mutation.path`; returns the file's text."""
    path = os.path.join(root, mutation.path)
    if not os.path.isfile(path):
        raise UserError(f'stale mutation {mutation.name}: {mutation.path} '
                        'does not exist')
    with open(path, encoding='utf-8') as f:
        text = f.read()
    count = text.count(mutation.old)
    if count != 1:
        raise UserError(f'stale mutation {mutation.name}: its old text '
                        f'occurs {count} times in {mutation.path} (it must '
                        'occur once); update the mutation')
    return text


def apply(mutation, root):
    """Replaces `mutation.old` by `mutation.new` in `root/mutation.path`
    (`check_fresh` first)."""
    text = check_fresh(mutation, root)
    with open(os.path.join(root, mutation.path), 'w',
              encoding='utf-8') as f:
        f.write(text.replace(mutation.old, mutation.new))


def copy_repo(repo, dest):
    """Copies `repo` to `dest` (a new folder) without EXCLUDE."""
    shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(*EXCLUDE),
                    symlinks=True)
    return dest


def pytest_command(mutation, basetemp):
    return ([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
             '-x', f'--basetemp={basetemp}']
            + (['--run_large'] if mutation.large else [])
            + list(mutation.tests))


def child_env(copy):
    """The environment of the tests: the copy first on the path, nothing
    of a surrounding pytest run (its xdist worker would change where
    shared fixtures are made)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PYTEST_', 'COV_CORE_'))}
    env['PYTHONPATH'] = copy
    return env


def summary(output):
    """What a pytest run said: its assertion lines (`E ...`, the first
    12) and its last 6 lines."""
    lines = output.strip().splitlines()
    errors = [line for line in lines if line.startswith('E ')][:12]
    return '\n'.join(errors + lines[-6:])


def run_mutation(mutation, repo=REPO, keep=False, timeout=3600):
    """Copies `repo`, applies `mutation` and runs its tests there. Returns
    {name, status (caught, MISSED or error), returncode, seconds, tests,
    large, why, tail (`summary` of the tests' output), copy (when
    kept)}."""
    root = tempfile.mkdtemp(prefix=f'break-{mutation.name}-')
    copy = os.path.join(root, 'repo')
    start = time.monotonic()
    try:
        copy_repo(repo, copy)
        apply(mutation, copy)
        try:
            res = subprocess.run(
                pytest_command(mutation, os.path.join(root, 'tmp')),
                cwd=copy, env=child_env(copy), capture_output=True,
                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            code, output = res.returncode, res.stdout + res.stderr
        except subprocess.TimeoutExpired as e:
            code = None
            output = f'timed out after {timeout} s\n' + (
                e.stdout.decode('utf-8', 'replace')
                if isinstance(e.stdout, bytes) else (e.stdout or ''))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    status = {1: CAUGHT, 0: MISSED}.get(code, ERROR)
    return {'name': mutation.name, 'status': status, 'returncode': code,
            'seconds': round(time.monotonic() - start, 1),
            'tests': list(mutation.tests), 'large': mutation.large,
            'why': mutation.why, 'path': mutation.path,
            'tail': summary(output),
            'copy': copy if keep else None}


def select(mutations, only=None, large=False):
    """The mutations to run: `only` (names, any lane) or every fast one,
    with the large ones too when `large`."""
    names = [m.name for m in mutations]
    if len(set(names)) != len(names):
        raise UserError('mutation names must be unique')
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise UserError(f'--only: unknown mutation(s) '
                            f'{choices(unknown)}; known: {choices(names)}')
        return [m for m in mutations if m.name in only]
    return [m for m in mutations if large or not m.large]


def run_all(mutations, repo=REPO, keep=False, timeout=3600,
            progress=runner.log, done=None):
    """Runs each mutation; a progress line each, and `done(results so
    far)` after each. Returns the results."""
    results = []
    for k, mutation in enumerate(mutations, 1):
        progress(f'{k}/{len(mutations)} {mutation.name} '
                 f'({mutation.path}) ...')
        result = run_mutation(mutation, repo, keep, timeout)
        results.append(result)
        progress(f'{k}/{len(mutations)} {mutation.name}: {result["status"]} '
                 f'in {result["seconds"]:.0f} s'
                 + (f' (copy kept in {result["copy"]})' if keep else ''))
        if result['status'] != CAUGHT:
            print(result['tail'], flush=True)
        if done:
            done(results)
    return results


def listing(mutations):
    lines = []
    for m in mutations:
        lane = 'large' if m.large else 'fast'
        lines.append(f'{m.name} [{lane}] {m.path}: {m.why}')
        lines += [f'    {t}' for t in m.tests]
    return '\n'.join(lines)


def markdown(results):
    lines = ['| mutation | breaks | file | tests that must fail | lane | '
             'result | seconds |', '| --- | --- | --- | --- | --- | --- | '
             '---: |']
    for r in results:
        tests = '<br>'.join(f'`{t.removeprefix("tests/")}`'
                            for t in r['tests'])
        lines.append(f'| `{r["name"]}` | {r["why"]} | `{r["path"]}` | '
                     f'{tests} | {"large" if r["large"] else "fast"} | '
                     f'**{r["status"]}** | {r["seconds"]:.0f} |')
    caught = sum(r['status'] == CAUGHT for r in results)
    lines.append('')
    lines.append(f'{caught} of {len(results)} caught.')
    return '\n'.join(lines)


def provenance_info(repo=REPO):
    """Date, machine, versions and the commit the mutations were made
    from (JSON-ready)."""
    return {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds'), 'commit': provenance.git_commit(
            repo, mark_dirty=True), 'machine': provenance.machine()}


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    chosen = select(MUTATIONS, f.only, f.large)
    if f.list:
        print(listing(chosen))
        return
    if f.output:
        if not f.output.endswith('.md'):
            raise UserError(f'--output={f.output}: must end with .md (the '
                            'results go next to it as .json)')
        if not os.path.isdir(os.path.dirname(os.path.abspath(f.output))):
            raise UserError(f'--output={f.output}: its folder does not '
                            'exist')
    for mutation in chosen:  # stale mutations fail before anything runs
        check_fresh(mutation, REPO)
    info = provenance_info() if f.output else None

    def write(results):
        """The table and results so far (a long run keeps what it has)."""
        m = info['machine']
        left = len(chosen) - len(results)
        header = (f'Measured {info["date"]} at commit {info["commit"]} on '
                  f'{m["cpu"]} ({m["cpu_count"]} cores, load '
                  f'{m["loadavg"][0]:.1f} at the start), Python '
                  f'{m["python"]}, TensorFlow {m["tensorflow"]}, Keras '
                  f'{m["keras"]}' + (f'; {left} mutation(s) still to run'
                                     if left else '') + '.\n\n')
        with open(f.output, 'w', encoding='utf-8') as fh:
            fh.write(header + markdown(results) + '\n')
        jsonio.write_json(f.output[:-len('.md')] + '.json',
                          dict(info, results=results,
                               not_run=[c.name for c in chosen[
                                   len(results):]]))

    results = run_all(chosen, REPO, f.keep, f.timeout,
                      done=write if f.output else None)
    print(markdown(results))
    if any(r['status'] != CAUGHT for r in results):
        sys.exit(1)


if __name__ == '__main__':
    define_flags()
    runner.run(main)
