import os

import pytest

from hournas_tf.common.errors import UserError
from hournas_tf.output_dir import new_output_dir


class Boom(Exception):
    pass


def _fail_inside(path, keep=False):
    with pytest.raises(Boom, match='before training'):
        with new_output_dir(str(path)) as output:
            (path / 'search_config.json').write_text('{}')
            if keep:
                output.keep()
            raise Boom('before training')


def test_a_failure_removes_the_folder_and_the_parents_it_made(tmp_path):
    (tmp_path / 'runs').mkdir()
    (tmp_path / 'runs' / 'old').mkdir()
    _fail_inside(tmp_path / 'runs' / 'a' / 'b')
    assert os.listdir(tmp_path / 'runs') == ['old']
    _fail_inside(tmp_path / 'new' / 'run')
    assert sorted(os.listdir(tmp_path)) == ['runs']


def test_a_failure_empties_a_folder_that_was_there_and_empty(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    with pytest.raises(Boom, match='late'):
        with new_output_dir(str(out)):
            (out / 'tensorboard' / 'vital').mkdir(parents=True)
            (out / 'a.json').write_text('{}')
            raise Boom('late')
    assert out.is_dir() and os.listdir(out) == []


def test_a_kept_or_finished_folder_stays(tmp_path):
    _fail_inside(tmp_path / 'kept', keep=True)
    assert os.listdir(tmp_path / 'kept') == ['search_config.json']
    with new_output_dir(str(tmp_path / 'done')):
        (tmp_path / 'done' / 'arch.json').write_text('{}')
    assert os.listdir(tmp_path / 'done') == ['arch.json']


def test_existing_files_and_folders_are_refused_untouched(tmp_path):
    (tmp_path / 'file').write_text('mine')
    with pytest.raises(UserError, match='is a file, not a folder'):
        with new_output_dir(str(tmp_path / 'file')):
            pass
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'mine.txt').write_text('mine')
    with pytest.raises(UserError, match='already exists and is not empty'):
        with new_output_dir(str(tmp_path / 'full')):
            pass
    with pytest.raises(UserError, match='cannot create output_dir'):
        with new_output_dir(str(tmp_path / 'file' / 'run')):
            pass
    assert (tmp_path / 'file').read_text() == 'mine'
    assert os.listdir(tmp_path / 'full') == ['mine.txt']
