"""Fuzzes the parsers and the commands with many bad inputs and prints how
many cases each target tried (docs/fuzzing.md).

The same strategies and checks as tests/test_fuzz_*.py
(hournas_tf/fuzzing.py),
with many more examples and a seed of your choice instead of the tests'
fixed, bounded set:

    python tools/fuzz_inputs.py                      # every target
    python tools/fuzz_inputs.py --examples=5000 --command_examples=500 \\
        --targets=search,train,architecture_string --fuzz_seed=3

A target is a parser (architecture JSON / file / string, latency table
JSON / file, op name, dataset name, search targets), the listing of image
folders, or a command run in-process (search, train, export, describe,
report). A case passes when it is refused with one line (exit code 2 and
one `error:` line for a command, with nothing in its workspace changed) or,
for the parsers that may accept some inputs, when what it accepted is
whole. The first failing case of a target is shrunk and printed; the tool
then goes on with the next target and exits with 1. Needs hypothesis.
"""

import tempfile
import time

from absl import flags

from hournas_tf.common import errors
from hournas_tf.common import jsonio
from hournas_tf.common import runner

FLAGS = flags.FLAGS
FOLDERS = 'image_folder_listing'
COMMANDS = ('search', 'train', 'export', 'describe', 'report')


def define_flags():
    """Defines the tool's flags (only when run as a script; no command of
    the package has these names, the commands run in this process)."""
    flags.DEFINE_integer('examples', 2000, 'Cases per parser target.',
                         lower_bound=1)
    flags.DEFINE_integer('command_examples', 200, 'Cases per command.',
                         lower_bound=1)
    flags.DEFINE_integer('folder_examples', 500, 'Image folders listed.',
                         lower_bound=1)
    flags.DEFINE_list('targets', None, 'Targets to run (default all): '
                      'names as printed, spaces as underscores.')
    flags.DEFINE_integer('fuzz_seed', 0, 'Hypothesis seed.')
    flags.DEFINE_string('counts_json', None, 'Also write the counts to '
                        'this JSON file.')


def target_names(parsers):
    """Every target's name, spaces as underscores."""
    return [n.replace(' ', '_') for n in parsers] + [FOLDERS, *COMMANDS]


def run_target(check, strategy, examples, seed):
    """Runs `check(value)` on `examples` values of `strategy`; returns the
    failure (after shrinking) or None."""
    from hypothesis import HealthCheck
    from hypothesis import given
    from hypothesis import seed as seed_of
    from hypothesis import settings

    @seed_of(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategy)
    def prop(value):
        check(value)

    try:
        prop()
    except Exception as e:  # noqa: BLE001 (reported, then the next target)
        return e
    return None


def _plan(fuzzing, chosen, f):
    """[(name, check, strategy, examples, count key)] of the chosen
    targets (all without `chosen`); a command's workspace is made only
    when it runs (export's builds a model)."""
    parsers = fuzzing.parsers()
    known = target_names(parsers)
    unknown = sorted(set(chosen or ()) - set(known))
    if unknown:
        raise errors.UserError(f'unknown target(s) {", ".join(unknown)}; '
                               f'valid: {errors.choices(known)}')

    def wanted(name):
        return not chosen or name.replace(' ', '_') in chosen

    plan = []
    for name in filter(wanted, parsers):
        plan.append((name, lambda v, n=name: fuzzing.check_parser(
            n, v, parsers), parsers[name][0], f['examples'], name))
    if wanted(FOLDERS):
        plan.append((FOLDERS, fuzzing.check_folder, fuzzing.image_folder(),
                     f['folder_examples'], 'image folder listing'))
    cases = fuzzing.command_cases()
    for command in filter(wanted, COMMANDS):
        root = tempfile.mkdtemp(prefix=f'fuzz_{command}_')
        fuzzing.command_workspace(root, command)
        plan.append((command, lambda c, cmd=command, r=root:
                     fuzzing.check_command(cmd, c, r), cases[command],
                     f['command_examples'], command))
    return plan


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    # The commands run in this process parse (and reset) the flags: keep
    # the tool's values.
    f = {name: FLAGS[name].value for name in (
        'examples', 'command_examples', 'folder_examples', 'targets',
        'fuzz_seed', 'counts_json')}
    try:
        from hournas_tf import fuzzing
    except ImportError as e:
        raise errors.UserError(f'hournas_tf/fuzzing.py needs {e.name}: pip '
                               'install hypothesis') from None

    rows, failed = [], []
    for name, check, strategy, examples, key in _plan(fuzzing, f['targets'],
                                                      f):
        start = time.perf_counter()
        failure = run_target(check, strategy, examples, f['fuzz_seed'])
        counts = fuzzing.COUNTS.get(key, {})
        rows.append({'target': name, 'cases': sum(counts.values()),
                     **counts, 'seconds': round(time.perf_counter()
                                                - start, 1),
                     'failed': failure is not None})
        print(f'{name}: {sum(counts.values())} cases '
              f'({", ".join(f"{v} {k}" for k, v in sorted(counts.items()))})'
              f' in {rows[-1]["seconds"]} s'
              + (f'; FAILED: {failure!r}' if failure else ''), flush=True)
        if failure:
            failed.append(name)
            for note in getattr(failure, '__notes__', []):
                print(f'  {note}', flush=True)
    # The commands run in-process leave the flags unparsed; absl's app.run
    # reads them again after main returns.
    FLAGS.mark_as_parsed()
    total = sum(r['cases'] for r in rows)
    print(f'total: {total} cases, {len(failed)} target(s) failed'
          + (f': {", ".join(failed)}' if failed else ''))
    if f['counts_json']:
        jsonio.write_json(f['counts_json'], {
            'seed': f['fuzz_seed'], 'targets': rows, 'total': total},
            indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    define_flags()
    runner.run(main)
