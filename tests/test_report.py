"""The search report: report.html rendered in a real headless browser."""

import html
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import run_module
from conftest import run_python

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import derive
from hournas_tf.reporting import diagram
from hournas_tf.reporting import figures
from hournas_tf.reporting import page

CHROMIUM = next((p for p in (shutil.which('chromium'),
                             shutil.which('chromium-browser'),
                             shutil.which('google-chrome'))
                 if p), None)
NO_BROWSER = ('no headless browser: install the system package chromium '
              'to render the report page in tests')


@pytest.fixture
def browser():
    """The headless browser: a skip without it locally, a failure in CI (the
    environment variable CI set), where a skip would hide the only rendering
    of the report page."""
    if CHROMIUM is None:
        if os.environ.get('CI'):
            pytest.fail(f'{NO_BROWSER} (.ci/run installs it)')
        pytest.skip(NO_BROWSER)
    return CHROMIUM


needs_browser = pytest.mark.usefixtures('browser')

# Appended to a copy of the page (the page itself has no script): after
# every image has loaded or failed, writes what the browser saw into a
# <pre id="probe"> that --dump-dom prints.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = {
    sections: [...document.querySelectorAll('section')].map(s => ({
      id: s.id, h2: (s.querySelector('h2') || {}).textContent || '',
      text: s.textContent.length})),
    images: [...document.images].map(i => ({
      alt: i.alt, complete: i.complete, width: i.naturalWidth,
      height: i.naturalHeight,
      section: (i.closest('section') || {}).id || ''})),
    svgs: [...document.querySelectorAll('svg')].map(s => ({
      section: (s.closest('section') || {}).id || '',
      width: s.getBoundingClientRect().width,
      rects: s.querySelectorAll('rect').length})),
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def browse(path, tmp_path):
    """What headless Chromium sees on the page at `path`: the probe's
    dict; also takes a screenshot (its path under 'screenshot')."""
    with open(path) as f:
        text = f.read()
    probe_page = tmp_path / 'probed.html'
    probe_page.write_text(text.replace('</body>', PROBE + '</body>'))
    common = [CHROMIUM, '--headless', '--disable-gpu', '--no-sandbox',
              '--hide-scrollbars', f'--user-data-dir={tmp_path / "profile"}',
              '--virtual-time-budget=10000']
    res = subprocess.run([*common, '--dump-dom', f'file://{probe_page}'],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stdout[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    shot = tmp_path / 'page.png'
    res = subprocess.run([*common, '--window-size=1200,2400',
                          f'--screenshot={shot}', f'file://{path}'],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    seen['screenshot'] = shot
    return seen


def decoded(path_or_bytes):
    import io

    import matplotlib.image

    if isinstance(path_or_bytes, bytes):
        path_or_bytes = io.BytesIO(path_or_bytes)
    return matplotlib.image.imread(path_or_bytes, format='png')


def check_page(seen, images):
    """Every section with its heading and content; `images` images per
    section, each decoded by the browser; the block diagram drawn."""
    ids = [s['id'] for s in seen['sections']]
    assert ids == [sid for sid, _ in page.SECTIONS]
    by_section = {}
    for image in seen['images']:
        assert image['complete'] and image['width'] > 100 and \
            image['height'] > 100, image
        assert image['alt'], image
        by_section[image['section']] = by_section.get(image['section'],
                                                      0) + 1
    assert by_section == images
    for s, (sid, name) in zip(seen['sections'], page.SECTIONS):
        assert s['h2'] == name, s
        assert s['text'] > len(name) + 20 or sid in images, s
    [svg] = seen['svgs']
    assert svg['section'] == 'architecture' and svg['width'] > 300
    shot = decoded(seen['screenshot'].read_bytes())
    assert shot.shape[:2] == (2400, 1200) and shot.std() > 0.05


# --- A small run folder written here (no training) -----------------------

ARCH = spaces.get_reference('mobilenet_v2', image_size=32, num_classes=10,
                            width_multiplier=0.35)
TARGETS = {'macs': 14e6, 'params': 0.3e6}


def history():
    """history.jsonl records as the search writes them."""
    space = ARCH.search_space()
    vital = list(space.vital_layers)
    other = [i for i in range(len(space.layers)) if i not in vital]
    records = []
    for stage, rows, epochs in (('vital', vital, 2), ('nonvital', other, 3)):
        for epoch in range(1, epochs + 1):
            records.append({
                'stage': stage, 'epoch': epoch, 'loss': 2.0 / epoch,
                'arch_loss': 2.1 / epoch, 'accuracy': 0.3 * epoch,
                'arch_accuracy': 0.25 * epoch, 'tau': 5.0 - epoch,
                'within_tolerance': 0.2 * epoch,
                'arch_grad_norm': {str(i + 1): 0.01 * (i + 1) / epoch
                                   for i in rows}})
    return records


def _png(path, seed):
    import matplotlib.pyplot as plt

    plt.imsave(path, np.random.default_rng(seed).random((120, 160)))


def fake_run(folder):
    """The files of a finished two-stage search run in `folder`."""
    os.makedirs(folder)
    _, before = derive.evaluate(ARCH.search_space(), dict(enumerate(
        ARCH.ops)), TARGETS, 0.03)
    entry = {'proposal': 0, 'probability': 0.7, 'ops': list(ARCH.ops),
             'achieved': before['achieved'], 'within_tolerance': True}
    ARCH.save(os.path.join(folder, 'arch.json'), {'search': {
        'targets': TARGETS, 'achieved': before['achieved'],
        'relative_error': before['relative_error'], 'tolerance': 0.03,
        'within_tolerance': before['within_tolerance'],
        'before_repair': before, 'repaired_layers': [], 'proposal': 0,
        'family': [entry, {**entry, 'proposal': 1, 'probability': 0.3}],
        'seconds': {'vital': 10.0, 'nonvital': 20.0, 'total': 31.0},
        'sampler': 'gumbel_max', 'vital_sampler': 'gumbel_softmax',
        'vital_first': True,
        'proposal_optimization': {'samples': {
            '5': {'share_within_tolerance': 0.1},
            '0.1': {'share_within_tolerance': 0.9}}}}})
    with open(os.path.join(folder, 'search_config.json'), 'w') as f:
        json.dump({'dataset': 'digits', 'num_proposals': 2,
                   'vital_epochs': 2, 'nonvital_epochs': 3}, f)
    with open(os.path.join(folder, 'history.jsonl'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in history())
    for k, name in enumerate(('ops_vital', 'ops_nonvital',
                              'proposals_stage2', 'proposals_searched')):
        _png(os.path.join(folder, f'{name}.png'), k)
    return folder


def fake_train(folder, arch=ARCH):
    os.makedirs(folder)
    with open(os.path.join(folder, 'metrics.json'), 'w') as f:
        json.dump({'architecture': arch.to_string(), 'test_accuracy': 0.9876,
                   'epochs': 6, 'dataset': 'digits', 'eval_split': 'test',
                   'inherited': {'accuracy': 0.5432}}, f)
    return folder


def fake_export(folder):
    os.makedirs(folder)
    path = os.path.join(folder, 'export_report.json')
    with open(path, 'w') as f:
        json.dump({'examples': 360, 'keras_accuracy': 0.98, 'passed': True,
                   'threads': [1, 2], 'artifacts': [{
                       'format': 'tflite', 'file': 'model_float32.tflite',
                       'bytes': 123456, 'max_rel_diff': 1e-6,
                       'top1_agreement': 1.0, 'accuracy': 0.98,
                       'latency': {'1': {'median_ms': 1.5},
                                   '2': {'median_ms': 0.9}},
                       'passed': True}]}, f)
    return path


SEARCH_IMAGES = {'op-probabilities': 2, 'proposals': 2, 'training': 3}


# --- Pieces -----------------------------------------------------------------


def test_png_uri_is_the_base64_of_the_bytes():
    assert page.png_uri(b'\x89PNG') == 'data:image/png;base64,iVBORw=='


def test_read_history_reads_records_and_tolerates_a_missing_file(tmp_path):
    assert page.read_history(str(tmp_path / 'none.jsonl')) == []
    path = tmp_path / 'history.jsonl'
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}\n')
    assert page.read_history(str(path)) == [{'epoch': 1}, {'epoch': 2}]


def test_figures_are_pngs_with_one_panel_per_stage():
    records = history()
    for make, width in ((figures.training_curves, 900),
                        (figures.tolerance_curve, 900),
                        (figures.grad_norms, 900)):
        image = decoded(make(records))
        assert image.shape[1] >= width and image.std() > 0.05, make
    # One stage logged: one panel, half as wide; none: a note.
    one = decoded(figures.grad_norms(records[:2]))
    assert one.shape[1] < decoded(figures.grad_norms(records)).shape[1]
    assert decoded(figures.grad_norms([{'stage': 'vital'}])).shape[1] > 0


PLOTS_KEEP_THE_BACKEND = """
import io, sys
import matplotlib
matplotlib.use('svg')  # a notebook user's backend
import matplotlib.pyplot as plt
import numpy as np
from hournas_tf.nas import plots
from hournas_tf.reporting import figures
from hournas_tf.training import block_importance
assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()
out = sys.argv[1]
records = [{'stage': 'vital', 'epoch': 1, 'loss': 2.0, 'tau': 5.0,
            'within_tolerance': 0.5, 'arch_grad_norm': {'0': 0.1}}]
for make in (figures.training_curves, figures.tolerance_curve,
             figures.grad_norms):
    assert make(records).startswith(b'\\x89PNG')
plots.op_heatmap(np.full((2, 2), 0.5), ['L1', 'L2'], ['a', 'b'],
                 np.ones((2, 2), bool), 'heat', out + '/heat.png')
plots.proposal_scatter({1.0: (np.array([1e6, 2e6]), np.array([3e6, 4e6]))},
                       {'params': 1.5e6, 'macs': 3.5e6}, 0.1, 'scatter',
                       out + '/scatter.png')
buffer = io.BytesIO()
block_importance.plot({'baseline_accuracy': 0.9, 'blocks': [
    {'name': 'stem', 'vital': True, 'drops': {0.5: {'drop': 0.1}}}]},
    'bars', buffer)
assert buffer.getvalue().startswith(b'\\x89PNG')
assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()
assert plt.get_fignums() == [], plt.get_fignums()  # no pyplot figure
print('ok')
"""


def test_plots_leave_the_matplotlib_backend_and_pyplot_alone(tmp_path):
    res = run_python('-c', PLOTS_KEEP_THE_BACKEND, str(tmp_path))
    assert res.returncode == 0 and res.stdout.strip() == 'ok', \
        res.stderr[-3000:]
    for name in ('heat.png', 'scatter.png'):
        assert (tmp_path / name).read_bytes().startswith(b'\x89PNG')


def test_block_diagram_is_svg_with_one_box_per_block():
    items = diagram.blocks(ARCH)
    space = ARCH.search_space()
    assert [b[0] for b in items] == ['stem', *(f'L{i + 1}' for i in range(
        len(space.layers))), 'head', 'classifier']
    vital = {f'L{i + 1}' for i in space.vital_layers}
    assert {b[0] for b in items if b[3]} == vital | {'stem', 'head',
                                                     'classifier'}
    svg = ET.fromstring(diagram.block_diagram(ARCH))
    ns = '{http://www.w3.org/2000/svg}'
    fills = [r.get('fill') for r in svg.iter(ns + 'rect')]
    # One box per block plus the legend's.
    assert len(fills) == len(items) + 1
    assert fills[:-1].count(diagram.VITAL_FILL) == len(vital) + 3
    texts = [t.text for t in svg.iter(ns + 'text')]
    assert 'L2 (vital)' not in texts and 'k3_e6' in texts


def test_find_train_dir_and_export_report(tmp_path):
    run = fake_run(str(tmp_path / 'run'))
    assert page.find_train_dir(run) is None
    assert page.find_export_report(run) is None
    with pytest.raises(UserError, match='has no metrics.json'):
        page.find_train_dir(run, str(tmp_path))
    with pytest.raises(UserError, match='does not exist'):
        page.find_export_report(run, None, str(tmp_path / 'x.json'))
    train = fake_train(os.path.join(run, 'train'))
    assert page.find_train_dir(run) == train
    export = fake_export(os.path.join(train, 'export'))
    assert page.find_export_report(run, train) == export
    mine = fake_export(os.path.join(run, 'export'))
    assert page.find_export_report(run, train) == mine


def test_load_run_refuses_folders_that_are_not_search_runs(tmp_path):
    with pytest.raises(UserError, match='has no arch.json'):
        page.load_run(str(tmp_path))
    ARCH.save(str(tmp_path / 'arch.json'))
    with pytest.raises(UserError, match='has no search section'):
        page.load_run(str(tmp_path))


def test_render_shows_every_section_and_the_numbers(tmp_path):
    run = fake_run(str(tmp_path / 'run'))
    text = page.render(page.load_run(run))
    for sid, name in page.SECTIONS:
        assert f'<section id="{sid}"><h2>{name}</h2>' in text
    assert 'No retraining run found' in text and 'No export_report' in text
    assert text.count('<img src="data:image/png;base64,') == 7
    # Nothing outside the page: no links, scripts or remote sources.
    assert '<script' not in text and '<link' not in text
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    fake_train(os.path.join(run, 'train'))
    fake_export(os.path.join(run, 'export'))
    text = page.render(page.load_run(run))
    assert '0.9876' in text and '0.5432' in text
    assert 'model_float32.tflite' in text and '0.9800' in text
    assert '<td>1.0e-06</td>' in text  # parity in scientific notation
    assert 'a different architecture' not in text
    other = fake_train(str(tmp_path / 'other'), spaces.get_reference(
        'mobilenet_v2', image_size=32, num_classes=10))
    assert 'a different architecture' in page.render(page.load_run(
        run, other))


def test_render_notes_what_a_one_stage_search_did_not_write(tmp_path):
    run = fake_run(str(tmp_path / 'run'))
    os.remove(os.path.join(run, 'ops_vital.png'))
    os.remove(os.path.join(run, 'history.jsonl'))
    text = page.render(page.load_run(run))
    assert text.count('<img ') == 3
    assert 'ops_vital.png: not written by this search' in text
    assert 'history.jsonl missing: no training curves' in text


@needs_browser
def test_write_report_opens_in_a_browser_with_every_section(tmp_path):
    run = fake_run(str(tmp_path / 'run'))
    fake_train(os.path.join(run, 'train'))
    fake_export(os.path.join(run, 'export'))
    path = page.write_report(run)
    assert path == os.path.join(run, 'report.html')
    check_page(browse(path, tmp_path), SEARCH_IMAGES)


def test_report_command_user_errors_are_one_line(tmp_path):
    for args, message in (
            ([], 'give one search run folder'),
            ([str(tmp_path)], 'has no arch.json: not a finished search run'),
            ([str(tmp_path), '--train_dir=/nonexistent'],
             'has no arch.json')):
        check_refused(run_module('hournas_tf.report', *args), message)
    run = fake_run(str(tmp_path / 'run'))
    check_refused(run_module('hournas_tf.report', run,
                             f'--train_dir={tmp_path}'), 'has no metrics.json')
    assert not os.path.exists(os.path.join(run, 'report.html'))


# --- A real search --------------------------------------------------------

@pytest.mark.large
@needs_browser
def test_a_search_writes_its_report_and_the_command_adds_retraining(
        tiny_search, tmp_path):
    searched, stdout = tiny_search  # conftest.TINY_SEARCH
    assert f'wrote {searched / "report.html"}' in stdout
    out = tmp_path / 'run'  # a copy: the report command rewrites the page
    shutil.copytree(searched, out)
    seen = browse(out / 'report.html', tmp_path)
    check_page(seen, SEARCH_IMAGES)
    arch = spaces.load_architecture(str(out / 'arch.json'))
    train = fake_train(str(tmp_path / 'train'), arch)
    export = fake_export(str(tmp_path / 'export'))
    res = run_module('hournas_tf.report', str(out), f'--train_dir={train}',
                     f'--export_report={export}')
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout == f'wrote {out / "report.html"}\n'
    text = (out / 'report.html').read_text()
    assert '0.9876' in text and 'model_float32.tflite' in text
    assert arch.to_string() in text
    check_page(browse(out / 'report.html', tmp_path), SEARCH_IMAGES)
    # The saved stage-2 supernet gives the derived architecture the
    # weights the search saved for it (arch.weights.h5).
    import hournas_tf
    from hournas_tf.nas import restore

    model = hournas_tf.build_model(arch)
    model.load_weights(str(out / 'arch.weights.h5'))
    inherited = derive.standalone_model(restore.load_supernet(str(out)),
                                        arch)
    for a, b in zip(model.weights, inherited.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
