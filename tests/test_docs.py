"""docs/ is complete and reachable: every flag of every command is on the
command's page, the output files the README once listed are still
documented, every page is linked from docs/README.md, every link resolves,
the flags in the documented commands exist, and the README stays short."""

import glob
import os
import re

import pytest
from conftest import REPO
from conftest import run_module

DOCS = os.path.join(REPO, 'docs')

# Each command and the docs/ page that lists all of its flags.
PAGES = {
    'hournas_tf.search': 'search.md',
    'hournas_tf.train': 'train.md',
    'hournas_tf.export': 'export.md',
    'hournas_tf.report': 'report.md',
    'hournas_tf.describe': 'describe.md',
    'tools.ablate': 'ablation.md',
    'tools.bench_input': 'data.md',
    'tools.benchmark': 'benchmarks.md',
    'tools.benchmarks_md': 'benchmarks.md',
    'tools.block_importance': 'tools.md',
    'tools.break_tests': 'testing.md',
    'tools.build_latency_table': 'deploy.md',
    'tools.budget_compare': 'multi_budget.md',
    'tools.budget_summary': 'multi_budget.md',
    'tools.build_time': 'speed.md',
    'tools.fuzz_inputs': 'fuzzing.md',
    'tools.plot_proposals': 'tools.md',
    'tools.proposal_share': 'tools.md',
    'tools.rank_correlation': 'rank_correlation.md',
    'tools.reference_table': 'counting.md',
    'tools.search_summary': 'tools.md',
}

# Commands that take every flag of another command, documented on its page.
INHERITS = {'tools.budget_compare': 'hournas_tf.search'}

# The output files the README listed before it moved them to docs/ (issue
# 21), per page: none may be lost.
OUTPUTS = {
    'search.md': [
        'arch.json', 'arch.weights.h5', 'family/proposal<j>.json',
        'family/proposal<j>.weights.h5', 'family/family.json',
        'search_config.json', 'history.jsonl', 'tensorboard/<stage>/',
        'ops_vital.png', 'ops_nonvital.png', 'proposals_stage2.png',
        'proposals_searched.png', 'dry_run.json', 'proposals_dry_run.png',
        'report.html', 'checkpoints/', 'stage1.json', 'supernet.json',
        'supernet.weights.h5', 'stderr.log'],
    'train.md': [
        'model.keras', 'metrics.json', 'train_config.json', 'stderr.log',
        'history.csv', 'tensorboard/', 'checkpoints/best.keras',
        'checkpoints/last.keras', 'backup/'],
    'export.md': [
        'saved_model/', 'model_float32.tflite', 'model_float16.tflite',
        'model_int8.tflite', 'model_qat_int8.tflite', 'export_report.json',
        'export_config.json'],
    'report.md': ['report.html', 'export_report.json'],
    'tools.md': [
        'proposals.png', 'proposals.json', 'block_importance.json',
        'block_importance.png', 'history.jsonl'],
    'ablation.md': ['ablation.md', 'results.json', 'job.log'],
    'benchmarks.md': ['results-<device>.json', 'BENCHMARKS.md'],
    'deploy.md': ['blocks.json', 'phone.csv'],
}

README_MAX_LINES = 200
COMMAND = re.compile(r'python3? (?:-m (hournas_tf\.\w+|tools\.\w+)|'
                     r'tools/(\w+)\.py)')


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def _commands():
    """hournas_tf's commands and the tools: every module under
    hournas_tf/ (top level) or tools/ that runs as a main."""
    names = []
    for folder, package in (('hournas_tf', 'hournas_tf'), ('tools', 'tools')):
        for path in sorted(glob.glob(os.path.join(REPO, folder, '*.py'))):
            if re.search(r'__name__ == [\'"]__main__[\'"]', _read(path)):
                names.append(f'{package}.{os.path.basename(path)[:-3]}')
    return names


def _pages():
    """{name: text} of docs/*.md."""
    return {os.path.basename(p): _read(p)
            for p in sorted(glob.glob(os.path.join(DOCS, '*.md')))}


def _mentions(text, flag):
    return re.search(rf'--(\[no\]|no)?{flag}\b', text) is not None


def _flags(module):
    """(the command's own flags, every flag it accepts), read from its
    `--helpfull` as a user would see them."""
    out = run_module(module, '--helpfull', timeout=300)
    assert 'flags:' in out.stdout, (module, out.stderr[-2000:])
    own, every, section = [], set(), None
    for line in out.stdout.split('flags:\n', 1)[1].splitlines():
        if re.match(r'^\S.*:$', line):
            section = line[:-1]
            continue
        match = re.match(r'^  --(\[no\])?(\w+):', line)
        if match:
            every.add(match.group(2))
            if section.startswith((REPO, 'hournas_tf', 'tools')):
                own.append(match.group(2))
    return own, every


def _invocations(text):
    """(module, [flag names]) of every command in `text`'s code blocks and
    inline code, continuation lines joined."""
    blocks = re.findall(r'```[a-z]*\n(.*?)```', text, re.S)
    spans = [span.replace('\n', ' ') for span in re.findall(
        r'`([^`\n]*(?:\n[^`\n]*){0,3})`',
        re.sub(r'```.*?```', '', text, flags=re.S))]
    for code in blocks + spans:
        code = re.sub(r'\\\n', ' ', code)
        for line in code.splitlines():
            matches = list(COMMAND.finditer(line))
            for i, match in enumerate(matches):
                end = (matches[i + 1].start() if i + 1 < len(matches)
                       else len(line))
                part = re.split(r'\s(?:#|\||;|&&|>)', line[match.end():end])
                module = match.group(1) or f'tools.{match.group(2)}'
                yield module, re.findall(r'(?:^|\s)--(\w+)', part[0])


def test_every_command_has_a_page():
    commands = _commands()
    assert sorted(PAGES) == sorted(commands), (
        'PAGES names no page for', sorted(set(commands) - set(PAGES)),
        'and a page for non-commands', sorted(set(PAGES) - set(commands)))
    pages = _pages()
    for page in set(PAGES.values()) | set(OUTPUTS):
        assert page in pages, f'docs/{page} does not exist'


@pytest.mark.parametrize('module', sorted(PAGES))
def test_every_flag_of_a_command_is_on_its_page_and_used_flags_exist(module):
    """One `--helpfull` per command: its own flags are all on its page,
    the README names it, and every documented invocation of it (README,
    docs/) uses flags it has."""
    page = PAGES[module]
    text = _read(os.path.join(DOCS, page))
    own, every = _flags(module)
    assert 'helpfull' in every, f'{module} --helpfull was not read'
    if module in INHERITS:
        parent = _flags(INHERITS[module])[0]
        assert set(parent) <= set(own), (module, INHERITS[module])
        own = [flag for flag in own if flag not in parent]
        assert f'python -m {INHERITS[module]}' in text
    missing = [f'--{flag}' for flag in own if not _mentions(text, flag)]
    assert not missing, f'docs/{page} does not mention {module}\'s {missing}'
    readme = _read(os.path.join(REPO, 'README.md'))
    path = module.replace('.', '/') + '.py'
    assert module in readme or path in readme, f'README lacks {module}'
    texts = {'README.md': readme}
    texts.update({f'docs/{n}': t for n, t in _pages().items()})
    wrong = []
    for name, text in texts.items():
        for used, names in _invocations(text):
            if used == module:
                wrong += [(name, f'--{n}') for n in names if n not in every
                          and not (n.startswith('no') and n[2:] in every)]
    assert not wrong, f'{module} has no flags {wrong}'


@pytest.mark.parametrize('page', sorted(OUTPUTS))
def test_output_files_are_documented(page):
    text = _read(os.path.join(DOCS, page))
    missing = [name for name in OUTPUTS[page] if f'`{name}' not in text
               and f'{name}`' not in text]
    assert not missing, f'docs/{page} does not name {missing}'


def test_every_page_is_in_the_index():
    index = _read(os.path.join(DOCS, 'README.md'))
    missing = [name for name in _pages() if name != 'README.md'
               and f']({name})' not in index]
    assert not missing, f'docs/README.md does not link {missing}'
    readme = _read(os.path.join(REPO, 'README.md'))
    assert '](docs/README.md)' in readme


def test_every_relative_link_resolves():
    files = [os.path.join(REPO, 'README.md')] + sorted(
        glob.glob(os.path.join(DOCS, '*.md')))
    broken = []
    for path in files:
        for target in re.findall(r'\]\(([^)\s]+)\)', _read(path)):
            target = target.split('#')[0]
            if not target or re.match(r'[a-z]+:', target):
                continue
            full = os.path.join(os.path.dirname(path), target)
            if not os.path.exists(full):
                broken.append((os.path.relpath(path, REPO), target))
    assert not broken, f'links to nothing: {broken}'


def test_readme_is_short():
    lines = _read(os.path.join(REPO, 'README.md')).count('\n')
    assert lines <= README_MAX_LINES, (
        f'README.md has {lines} lines (at most {README_MAX_LINES}): move '
        'details to docs/')


def test_invocations_finds_commands_and_their_flags():
    text = ('x `python -m hournas_tf.search --space=fbnet\n--dry_run` y\n'
            '```sh\npython -m tools.ablate --seeds=1 \\\n    --workers=2'
            ' | tail  # --not_a_flag\npython tools/plot_proposals.py '
            '--output=a.png && python -m hournas_tf.report runs/x\n```\n')
    assert list(_invocations(text)) == [
        ('tools.ablate', ['seeds', 'workers']),
        ('tools.plot_proposals', ['output']),
        ('hournas_tf.report', []),
        ('hournas_tf.search', ['space', 'dry_run'])]
    assert _mentions('the --norepair flag', 'repair')
    assert not _mentions('--repairs', 'repair')
