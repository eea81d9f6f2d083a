"""The one-page search report: `write_report(run_dir)` -> report.html.

One self-contained HTML file (images as data: URIs, the block diagram as
inline SVG, no script, no network) with, per section (`SECTIONS`, each an
element id): the summary and model family, the derived architecture as a
table and a diagram, targets vs achieved before and after repair, the
op-probability heat maps of both stages, the proposal distribution
(the paper's figure 3), the supernet's training curves, within-tolerance
share and per-layer architecture-gradient norms, and, when found, the
retraining metrics and the export report.

Where it looks: the search run's own files; a retraining run in
`train_dir` (default: `<run_dir>/train` when it holds metrics.json); the
export report at `export_report` (default: the first of
`<run_dir>/export/export_report.json` and
`<train_dir>/export/export_report.json` that exists: where `python -m
hournas_tf.export` writes it for the run's arch.json or the train run's
model.keras).
"""

import base64
import html
import json
import os

from hournas_tf.common.errors import UserError
from hournas_tf.common.jsonio import read_json
from hournas_tf.reporting import diagram
from hournas_tf.resources import counting
from hournas_tf.spaces.architecture import Architecture

REPORT_FILE = 'report.html'
SECTIONS = (
    ('summary', 'Summary'),
    ('architecture', 'Derived architecture'),
    ('targets', 'Targets vs achieved'),
    ('op-probabilities', 'Op probabilities'),
    ('proposals', 'Proposal distribution'),
    ('training', 'Supernet training'),
    ('family', 'Model family'),
    ('budgets', 'Budgets'),
    ('retrain', 'Retraining'),
    ('export', 'Export'),
)
STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left;
         overflow-wrap: anywhere; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.vital td { background: #fde3c8; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; }
.ok { color: #1a7f37; } .miss { color: #b42318; }
svg.diagram { max-width: 100%; height: auto; }
"""


def _read_json(path):
    return read_json(path, 'file')


def _optional_json(path):
    return _read_json(path) if path and os.path.isfile(path) else None


def read_history(path):
    """The records of a history.jsonl ([] without one)."""
    if not os.path.isfile(path):
        return []
    records = []
    with open(path, errors='replace') as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                raise UserError(f'{path} line {number} is not a JSON '
                                'object: not written by python -m '
                                'hournas_tf.search')
            records.append(record)
    return records


def png_uri(data):
    """A data: URI of PNG bytes."""
    return 'data:image/png;base64,' + base64.b64encode(data).decode('ascii')


def _esc(value):
    return html.escape(str(value))


def _img(data, alt):
    return f'<img src="{png_uri(data)}" alt="{_esc(alt)}">'


def _file_img(path, alt):
    if not os.path.isfile(path):
        return None
    with open(path, 'rb') as f:
        return _img(f.read(), alt)


def _note(text):
    return f'<p class="note">{_esc(text)}</p>'


def _table(head, rows, row_classes=None):
    out = ['<table><tr>' + ''.join(f'<th>{_esc(h)}</th>' for h in head)
           + '</tr>']
    for k, row in enumerate(rows):
        cls = f' class="{row_classes[k]}"' if row_classes and \
            row_classes[k] else ''
        cells = ''.join(
            f'<td class="num">{_esc(c)}</td>' if isinstance(c, (int, float))
            and not isinstance(c, bool) else f'<td>{_esc(c)}</td>'
            for c in row)
        out.append(f'<tr{cls}>{cells}</tr>')
    return '\n'.join(out + ['</table>'])


def _pct(value):
    return f'{value:+.2%}'


def _flag(ok):
    return ('<span class="ok">within tolerance</span>' if ok else
            '<span class="miss">outside tolerance</span>')


# --- Sections ----------------------------------------------------------------


def _summary(run):
    s, cfg = run['search'], run['config']
    seconds = s.get('seconds', {})
    rows = [
        ('space', f'{run["arch"].space} at {run["arch"].image_size}px, '
                  f'{run["arch"].num_classes} classes, width '
                  f'x{run["arch"].width_multiplier:g}'),
        ('dataset', cfg.get('dataset', '?')),
        ('architecture', run['arch'].to_string()),
        ('model family', f'{len(s.get("family", []))} architectures, one '
                         'per space proposal (section "Model family")'),
        ('chosen proposal', s.get('proposal')),
        ('samplers', f'stage 1 {s.get("vital_sampler")}, stage 2 '
                     f'{s.get("sampler")}; vital first: '
                     f'{s.get("vital_first")}'),
        ('proposals m', cfg.get('num_proposals')),
        ('epochs', f'stage 1 {cfg.get("vital_epochs")}, stage 2 '
                   f'{cfg.get("nonvital_epochs")}'),
        ('search time', ', '.join(f'{k} {v:.0f} s'
                                  for k, v in seconds.items())),
    ]
    start = s.get('stage2_start')
    if start:
        rows.append(('stage 2 start', f'{start["share_within_tolerance"]:.1%}'
                     ' of draws within tolerance, mean top probability '
                     f'{start.get("mean_top_probability", 1.0):.3f}'))
    moved = s.get('rows_changed')
    if moved:
        rows.append(('rows changed', f'{moved["total"]} of {moved["rows"]} '
                     '(proposal, layer) rows: the most probable op moved '
                     'during stage 2'))
    return _table(('item', 'value'), rows)


def _architecture(run):
    arch = run['arch']
    space = arch.search_space()
    cost = counting.arch_cost(arch)
    vital = set(space.vital_layers)
    rows, classes = [], []
    rows.append(('stem', f'conv {space.stem.kernel}x{space.stem.kernel}',
                 f'3 -> {space.stem.c_out}', space.stem.stride, 'yes',
                 cost.stem.macs, cost.stem.params))
    classes.append('vital')
    for layer, op, c in zip(space.layers, arch.ops, cost.layers):
        is_vital = layer.index in vital
        rows.append((f'L{layer.index + 1}', op,
                     f'{layer.c_in} -> {layer.c_out}', layer.stride,
                     'yes' if is_vital else 'no', c.macs, c.params))
        classes.append('vital' if is_vital else '')
    for name, op, c in (('head', 'conv 1x1', cost.head),
                        ('classifier', 'pool + dense', cost.classifier)):
        rows.append((name, op, '', 1, 'yes', c.macs, c.params))
        classes.append('vital')
    total = cost.total
    rows.append(('total', '', '', '', '', total.macs, total.params))
    classes.append('')
    return (_table(('block', 'op', 'channels', 'stride', 'vital', 'MACs',
                    'params'), rows, classes)
            + diagram.block_diagram(arch))


def _targets(run):
    s = run['search']
    before = s.get('before_repair', {})
    rows = []
    for obj, target in s['targets'].items():
        rows.append((obj, counting.human(target),
                     counting.human(before.get('achieved', {}).get(obj, 0)),
                     _pct(before.get('relative_error', {}).get(obj, 0)),
                     counting.human(s['achieved'][obj]),
                     _pct(s['relative_error'][obj])))
    repaired = s.get('repaired_layers') or []
    early = s.get('proposal_repaired_layers') or []
    return (_table(('objective', 'target', 'search alone (before repair)',
                    'error', 'final (after repair)', 'error'), rows)
            + f'<p>Tolerance {s.get("tolerance", 0):.0%}: before repair '
            f'{_flag(before.get("within_tolerance", False))}, final '
            f'{_flag(s.get("within_tolerance", False))}; '
            + (f'repaired layers {_esc(repaired)}.' if repaired else
               'no layer repaired.')
            + (f' The proposals\' safety net changed layers {_esc(early)} '
               'before stage 2 (counted as a repair).' if early else '')
            + '</p>')


def _op_probabilities(run):
    out = []
    for name, alt in (('ops_vital.png', 'stage 1 op probabilities'),
                      ('ops_nonvital.png', 'stage 2 op probabilities')):
        img = _file_img(os.path.join(run['dir'], name), alt)
        out.append(img or _note(f'{name}: not written by this search '
                                '(no stage 1 in a one-stage search or with '
                                '--vital_ops)'))
    return '\n'.join(out)


def _proposals(run):
    out = []
    for name, alt in (
            ('proposals_stage2.png', 'architectures sampled from the '
             'optimized proposals, before stage 2'),
            ('proposals_searched.png', 'architectures sampled after the '
             'search')):
        img = _file_img(os.path.join(run['dir'], name), alt)
        out.append(f'<p>{_esc(alt)}:</p>' + (img or _note(f'{name} missing')))
    info = run['search'].get('proposal_optimization')
    samples = info.get('samples', {}) if isinstance(info, dict) else {}
    if samples:
        out.append(_table(('tau', 'share within tolerance'), [
            (tau, f'{r["share_within_tolerance"]:.1%}')
            for tau, r in samples.items()]))
    return '\n'.join(out)


def _training(run):
    from hournas_tf.reporting import figures

    history = run['history']
    if not history:
        return _note('history.jsonl missing: no training curves')
    rows = [(r.get('stage'), r.get('epoch'),
             f'{r["within_tolerance"]:.1%}' if 'within_tolerance' in r
             else '-', f'{r.get("accuracy", 0):.3f}',
             f'{r.get("arch_accuracy", 0):.3f}',
             f'{r["mean_top_probability"]:.3f}'
             if 'mean_top_probability' in r else '-',
             f'{r["rows_changed"]["total"]}/{r["rows_changed"]["rows"]}'
             if 'rows_changed' in r else '-')
            for r in history]
    return '\n'.join([
        _img(figures.training_curves(history), 'supernet training curves'),
        _img(figures.tolerance_curve(history),
             'share within tolerance and tau per epoch'),
        _img(figures.grad_norms(history),
             'per-layer architecture gradient norms'),
        _table(('stage', 'epoch', 'within tolerance', 'accuracy',
                'architecture-step accuracy', 'mean top probability',
                'rows changed'), rows)])


def _family(run):
    rows = []
    for e in run['search'].get('family', []):
        rows.append((e['proposal'], f'{e["probability"]:.3f}',
                     *(counting.human(e['achieved'][o])
                       for o in run['search']['targets']),
                     'yes' if e['within_tolerance'] else 'no',
                     ', '.join(e['ops'])))
    head = ('proposal', 'pi', *run['search']['targets'], 'within tolerance',
            'ops')
    return (_note('One architecture per space proposal (family/*.json, '
                  'each with its inherited weights); the chosen one is '
                  f'proposal {run["search"].get("proposal")}.')
            + _table(head, rows))


def _budgets(run):
    from hournas_tf.reporting import figures

    table = run.get('budgets')
    if not table:
        return _note('One budget (a search with --budgets has a network '
                     'per budget here).')
    rows = table['budgets']
    objectives = list(rows[0]['targets'])
    body = []
    for r in rows:
        before = r['before_repair']['relative_error']
        body.append((r['budget'], *(
            f'{counting.human(r["achieved"][o])} '
            f'({_pct(r["relative_error"][o])}; before repair '
            f'{_pct(before[o])})' for o in objectives),
            _fmt(r.get('inherited_accuracy')),
            'yes' if r['within_tolerance'] else 'no', r['arch_file']))
    head = ('budget', *(f'{o} (error)' for o in objectives),
            'inherited-weight accuracy', 'within tolerance', 'file')
    return (_note('One architecture per budget from one shared stage-2 '
                  'supernet (budgets.json; each with its inherited weights, '
                  'batch norm recalibrated, on the search\'s architecture '
                  'split).') + _table(head, body)
            + _img(figures.budget_curve(rows),
                   'inherited-weight accuracy against cost per budget'))


def _retrain(run):
    metrics = run['train']
    if metrics is None:
        return _note('No retraining run found: pass --train_dir=DIR (a '
                     'python -m hournas_tf.train output folder) or keep it '
                     'in <run>/train.')
    keys = ('test_accuracy', 'test_cross_entropy', 'epochs', 'dataset',
            'eval_split', 'macs', 'params', 'train_seconds', 'wall_seconds',
            'images_per_second')
    rows = [(k, _fmt(metrics[k])) for k in keys if k in metrics]
    if 'inherited' in metrics:
        rows.append(('inherited-weight estimate',
                     _fmt(metrics['inherited'].get('accuracy'))))
    same = metrics.get('architecture') == run['arch'].to_string()
    return (_note(f'From {run["train_dir"]}/metrics.json'
                  + ('' if same else ' (NOTE: a different architecture '
                     'than this search derived)'))
            + _table(('metric', 'value'), rows))


def _fmt(value):
    if isinstance(value, float):
        return f'{value:.4f}' if abs(value) < 10 else f'{value:.1f}'
    return value


def _sci(value):
    return f'{value:.1e}' if isinstance(value, float) else value


def _export(run):
    report = run['export']
    if report is None:
        return _note('No export_report.json found: run python -m '
                     'hournas_tf.export (it writes export/ next to the '
                     'model) or pass --export_report=PATH.')
    threads = [str(t) for t in report.get('threads', [])]
    rows = []
    for a in report.get('artifacts', []):
        lat = a.get('latency') or {}
        rows.append((a.get('format'), a.get('file'), a.get('bytes'),
                     _sci(a.get('max_rel_diff')),
                     _fmt(a.get('top1_agreement')),
                     _fmt(a.get('accuracy')),
                     *(_fmt(lat[t]['median_ms']) if t in lat else '-'
                       for t in threads),
                     'ok' if a.get('passed') else 'FAIL'))
    head = ('format', 'file', 'bytes', 'max rel diff', 'top-1 agreement',
            'accuracy', *(f'ms @ {t} threads' for t in threads), 'check')
    return (_note(f'From {run["export_path"]}: '
                  f'{report.get("examples")} eval images, Keras accuracy '
                  f'{_fmt(report.get("keras_accuracy"))}, all passed: '
                  f'{report.get("passed")}.') + _table(head, rows))


RENDER = {
    'summary': _summary, 'architecture': _architecture,
    'targets': _targets, 'op-probabilities': _op_probabilities,
    'proposals': _proposals, 'training': _training, 'family': _family,
    'budgets': _budgets, 'retrain': _retrain, 'export': _export,
}


# --- The page ----------------------------------------------------------------


def find_train_dir(run_dir, train_dir=None):
    """`train_dir`, else `<run_dir>/train` when it holds metrics.json."""
    if train_dir:
        if not os.path.isfile(os.path.join(train_dir, 'metrics.json')):
            raise UserError(f'{train_dir} has no metrics.json: not a '
                            'finished python -m hournas_tf.train run')
        return train_dir
    default = os.path.join(run_dir, 'train')
    return default if os.path.isfile(os.path.join(default,
                                                  'metrics.json')) else None


def find_export_report(run_dir, train_dir=None, export_report=None):
    """The export_report.json to show, or None."""
    if export_report:
        if not os.path.isfile(export_report):
            raise UserError(f'export report {export_report} does not exist')
        return export_report
    for folder in (run_dir, train_dir):
        if folder:
            path = os.path.join(folder, 'export', 'export_report.json')
            if os.path.isfile(path):
                return path
    return None


def load_run(run_dir, train_dir=None, export_report=None):
    """Everything the page shows, read from the run's files."""
    arch_path = os.path.join(run_dir, 'arch.json')
    if not os.path.isfile(arch_path):
        raise UserError(f'{run_dir} has no arch.json: not a finished '
                        'search run')
    data = _read_json(arch_path)
    if not isinstance(data, dict) or not isinstance(data.get('search'),
                                                      dict):
        raise UserError(f'{arch_path} has no search section: not written '
                        'by python -m hournas_tf.search')
    train_dir = find_train_dir(run_dir, train_dir)
    export_path = find_export_report(run_dir, train_dir, export_report)
    return {
        'dir': run_dir,
        'arch': Architecture.from_json(data),
        'search': data['search'],
        'config': _optional_json(os.path.join(run_dir,
                                              'search_config.json')) or {},
        'history': read_history(os.path.join(run_dir, 'history.jsonl')),
        'train_dir': train_dir,
        'train': _optional_json(os.path.join(train_dir, 'metrics.json'))
        if train_dir else None,
        'export_path': export_path,
        'export': _optional_json(export_path),
        'budgets': _optional_json(os.path.join(run_dir, 'budgets.json')),
    }


def render(run):
    """The HTML text of a loaded run."""
    title = f'HourNAS search report: {run["arch"].space} ({run["dir"]})'
    nav = ' | '.join(f'<a href="#{sid}">{_esc(name)}</a>'
                     for sid, name in SECTIONS)
    body = [f'<h1>{_esc(title)}</h1>', f'<nav>{nav}</nav>']
    for sid, name in SECTIONS:
        body.append(f'<section id="{sid}"><h2>{_esc(name)}</h2>\n'
                    f'{RENDER[sid](run)}\n</section>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{_esc(title)}</title><style>{STYLE}</style></head>'
            '<body>\n' + '\n'.join(body) + '\n</body></html>\n')


def write_report(run_dir, train_dir=None, export_report=None):
    """Writes `<run_dir>/report.html`; returns its path."""
    run = load_run(run_dir, train_dir, export_report)
    path = os.path.join(run_dir, REPORT_FILE)
    with open(path, 'w') as f:
        f.write(render(run))
    return path
