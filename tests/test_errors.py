"""The command wrapper: one line on stderr, exit 2, log lines held back."""

import os
import textwrap

import pytest
from conftest import run_python

from hournas_tf.common import errors
from hournas_tf.common import jsonio
from hournas_tf.common import runner
from hournas_tf.fuzzing import check_refused

# A command whose main writes log lines the way TensorFlow does (C++ on file
# descriptor 2, Python through absl logging) before it fails.
COMMAND = textwrap.dedent('''
    import atexit
    import os
    import signal
    import sys

    from absl import flags
    from absl import logging

    from hournas_tf.common import errors
    from hournas_tf.common import runner
    from hournas_tf.output_dir import new_output_dir

    flags.DEFINE_string('outcome', 'user_error', '')
    flags.DEFINE_bool('chatty', False, '')
    flags.DEFINE_string('output_dir', '', '')
    flags.DEFINE_bool('skip_teardown', False, '')
    flags.DEFINE_bool('teardown_probe', False, '')


    def outcome():
        if flags.FLAGS.outcome == 'user_error':
            raise errors.UserError('cifar10 is not prepared')
        if flags.FLAGS.outcome == 'crash':
            raise RuntimeError('a bug')
        if flags.FLAGS.outcome == 'killed':
            os.kill(os.getpid(), signal.SIGKILL)


    def main(argv):
        os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on\\n')
        logging.warning('tfds: variant folder has no dataset_info.json')
        print('progress', flush=True)
        if flags.FLAGS.teardown_probe:
            atexit.register(print, 'teardown ran')
            # Held until flushed, even under PYTHONUNBUFFERED.
            sys.stdout.reconfigure(line_buffering=False, write_through=False)
            print('buffered')
        if not flags.FLAGS.output_dir:
            return outcome()
        with new_output_dir(flags.FLAGS.output_dir) as output:
            output.keep()
            os.write(2, b'W0000 written once the folder exists\\n')
            outcome()


    runner.run(main, show_logs=lambda f: f.chatty,
               skip_teardown='--skip_teardown' in sys.argv)
''')


def _run(*args):
    return run_python('-c', COMMAND, *args, timeout=120)


def test_a_user_error_is_the_only_line_on_stderr():
    out = _run()
    assert out.returncode == 2
    assert out.stderr == 'error: cifar10 is not prepared\n'
    assert out.stdout == 'progress\n'


def test_a_success_prints_no_log_lines():
    out = _run('--outcome=ok')
    assert (out.returncode, out.stderr, out.stdout) == (0, '', 'progress\n')


@pytest.mark.parametrize('skip', [False, True])
def test_skip_teardown_flushes_output_and_skips_exit_hooks(skip):
    out = _run('--outcome=ok', '--teardown_probe',
               *(['--skip_teardown'] if skip else []))
    assert (out.returncode, out.stderr) == (0, '')
    assert out.stdout == 'progress\nbuffered\n' + (
        '' if skip else 'teardown ran\n')


def test_skip_teardown_keeps_failures_as_they_were():
    out = _run('--skip_teardown')
    assert out.returncode == 2
    assert out.stderr == 'error: cifar10 is not prepared\n'


@pytest.mark.parametrize('flag', ['--chatty', '--verbosity=0'])
def test_logs_are_shown_when_asked_for(flag):
    out = _run(flag)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert 'oneDNN' in lines[0] and 'dataset_info.json' in lines[1]
    assert lines[-1] == 'error: cifar10 is not prepared'


def test_a_crash_shows_the_held_logs_then_the_traceback():
    out = _run('--outcome=crash')
    assert out.returncode == 1
    assert out.stderr.index('oneDNN') < out.stderr.index('dataset_info') \
        < out.stderr.index('Traceback') < out.stderr.index('a bug')


@pytest.mark.parametrize('flag, message', [
    ('--flagfile=/nonexistent.flags', 'error: Unable to open flagfile: '),
    ('--outcom=ok', "error: Unknown command line flag 'outcom'"),
])
def test_flag_errors_are_one_line(flag, message):
    assert check_refused(_run(flag)).startswith(message)


def test_read_json_names_the_file_and_what_is_wrong(tmp_path):
    good = tmp_path / 'a.json'
    good.write_text('{"x": [1, 2]}')
    assert jsonio.read_json(str(good), 'thing') == {'x': [1, 2]}
    missing = tmp_path / 'missing.json'
    with pytest.raises(errors.UserError,
                       match=f"^thing '{missing}' does not exist$"):
        jsonio.read_json(str(missing), 'thing')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"x": ')
    with pytest.raises(errors.UserError,
                       match=f"^malformed thing '{bad}': it is not JSON"):
        jsonio.read_json(str(bad), 'thing')


def test_a_killed_run_keeps_its_held_log_lines(tmp_path):
    out = _run('--outcome=killed', f'--output_dir={tmp_path / "run"}')
    assert out.returncode == -9 and out.stderr == ''
    log = (tmp_path / 'run' / runner.STDERR_LOG).read_text()
    assert log.index('oneDNN') < log.index('dataset_info') \
        < log.index('written once the folder exists')


def test_with_an_output_dir_a_crash_still_shows_every_held_line(tmp_path):
    out = _run('--outcome=crash', f'--output_dir={tmp_path / "run"}')
    assert out.returncode == 1
    assert out.stderr.index('oneDNN') < out.stderr.index('dataset_info') \
        < out.stderr.index('folder exists') < out.stderr.index('Traceback')
    log = (tmp_path / 'run' / runner.STDERR_LOG).read_text()
    assert 'oneDNN' in log and 'folder exists' in log
    # A success keeps the log too; nothing on the terminal.
    out = _run('--outcome=ok', f'--output_dir={tmp_path / "ok"}')
    assert (out.returncode, out.stderr) == (0, '')
    assert 'folder exists' in (tmp_path / 'ok' / runner.STDERR_LOG
                               ).read_text()


def test_keep_log_appends_and_needs_held_stderr(tmp_path):
    assert runner.keep_log(str(tmp_path)) is None  # nothing held
    assert not os.listdir(tmp_path)
    (tmp_path / runner.STDERR_LOG).write_text('first run\n')
    with runner.held_stderr() as held:
        os.write(2, b'before\n')
        path = runner.keep_log(str(tmp_path))
        assert runner.keep_log(str(tmp_path)) == path  # once
        os.write(2, b'after\n')
    assert held.text == 'before\nafter\n'
    assert (tmp_path / runner.STDERR_LOG).read_text() == \
        'first run\nbefore\nafter\n'
