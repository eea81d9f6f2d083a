"""Finished ablation cells restored from a results.json.

A results.json of `tools/ablate.py` holds every cell's result, so a table
whose cell folders are gone (a committed one, e.g.
docs/ablation_fashion_mnist_results.json) can still be extended: its cells
are written back into a new output folder as finished cells, and a run
there adds only the rows and seeds they lack, paired by seed with them.

- `restore_cells(config, path)` checks that the file's settings are the
  run's (the search settings, the retraining recipe, the split), writes
  each of its cells that the run has (its variants and seeds) and keeps
  any cell already there; it records where they came from in
  `RESTORED_FILE`.
- A row that reads the default search's folder (best-of-k, no stage 2)
  cannot run for a seed whose default cell was restored, since no folder
  came with it; that is refused up front.
- `restored_from(output_dir)` is that record, for the table's footer.
"""

import dataclasses
import json
import os

from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.experiments import ablation

RESTORED_FILE = 'restored.json'


def _settings(config):
    """The settings a cell's result depends on, as a results.json holds
    them (JSON types)."""
    return json.loads(json.dumps({
        'search_config': dataclasses.asdict(config.search),
        'train_epochs': config.train_epochs,
        'train_examples': config.train_examples,
        'random_k': config.random_k}))


def _difference(mine, theirs, prefix=''):
    """The first setting (a dotted name, its value here and there) on
    which two settings dicts differ, or None."""
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _difference(a, b, f'{prefix}{key}.')
            if found:
                return found
        elif a != b:
            return f'{prefix}{key}', a, b
    return None


def _default_without_folder(config, seed, cells):
    """True if the default cell of `seed` is (or will be) finished
    without the search folder that best-of-k and no stage 2 read."""
    default = (ablation.DEFAULT, seed)
    if default not in cells and not ablation.is_done(config, *default):
        return False  # the run searches it
    return not os.path.isfile(os.path.join(
        ablation.cell_dir(config, *default), 'search', 'supernet.json'))


def restore_cells(config, path):
    """Writes the cells of the results.json at `path` that `config` runs
    into `config.output_dir` (a cell already there is kept); returns the
    number written. UserError if the file is not a results.json of these
    settings, or if a row that needs the default search's folder would run
    for a seed whose default cell is restored."""
    if not os.path.isfile(path):
        raise UserError(f'--restore_cells={path}: no such file; give a '
                        'results.json of tools/ablate.py')
    data = jsonio.read_json(path, 'results.json')
    if not isinstance(data, dict) or not isinstance(
            data.get('results'), dict) or 'search_config' not in data:
        raise UserError(f'--restore_cells={path} is not a results.json of '
                        'tools/ablate.py (it has no results and '
                        'search_config)')
    theirs = {k: data.get(k) for k in ('search_config', 'train_epochs',
                                        'train_examples', 'random_k')}
    found = _difference(_settings(config), theirs)
    if found:
        name, mine, other = found
        raise UserError(f'--restore_cells={path} was run with {name}='
                        f'{other!r}, this run has {mine!r}; restore cells '
                        'only into a run of the same settings')
    earlier = restored_from(config.output_dir)
    if earlier and earlier['path'] != path:
        raise UserError(f'{config.output_dir} already holds cells restored '
                        f'from {earlier["path"]}; restore {path} into '
                        'another --output_dir')
    cells = {(r['variant'], r['seed']): r
             for rows in data['results'].values() for r in rows
             if r['variant'] in config.variants and r['seed'] in config.seeds}
    for variant in ablation.NEEDS_DEFAULT:
        for seed in config.seeds if variant in config.variants else ():
            if (variant, seed) not in cells and \
                    not ablation.is_done(config, variant, seed) and \
                    _default_without_folder(config, seed, cells):
                raise UserError(
                    f'{variant} seed {seed} needs the {ablation.DEFAULT} '
                    'search folder of its seed, and restored cells come '
                    f'without one; drop {variant} from --variants or '
                    f'restore a results.json that has it')
    written = 0
    for (variant, seed), result in sorted(cells.items()):
        if ablation.is_done(config, variant, seed):
            continue
        folder = ablation.cell_dir(config, variant, seed)
        os.makedirs(folder, exist_ok=True)
        jsonio.write_json(os.path.join(folder, ablation.RESULT_FILE),
                          result)
        written += 1
    record = {'path': path, 'command': data.get('command'),
              'started': data.get('started'),
              'commit': (data.get('machine') or {}).get('commit'),
              'cells': sorted(f'{v}:{s}' for v, s in cells)}
    os.makedirs(config.output_dir, exist_ok=True)
    jsonio.write_json(os.path.join(config.output_dir, RESTORED_FILE), record)
    return written


def restored_from(output_dir):
    """The record `restore_cells` wrote in `output_dir`, or None."""
    path = os.path.join(output_dir, RESTORED_FILE)
    return jsonio.read_json(path, 'restored cells') if os.path.isfile(
        path) else None
