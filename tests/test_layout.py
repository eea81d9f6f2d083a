"""The package's layers: imports only go down (docs/design.md)."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'hournas_tf'

# Folder (or top-level module) -> rank; a module may import from its own
# folder and from lower ranks only.
RANKS = {
    'common': 0,
    'output_dir': 1,
    'normalization': 1,
    'distribute': 1,
    'spaces': 1,
    'resources': 2,
    'data': 3,
    'blocks': 3,
    'reporting': 3,
    'nas': 4,
    'training': 5,
    'benchmarking': 5,  # above nas: the search never imports it
    'exporting': 5,
    'experiments': 6,
    'commands': 7,
}
PURE = ('common/errors', 'common/runner', 'common/jsonio',
        'common/preemption', 'output_dir', 'normalization', 'spaces',
        'resources')
# Checked without TensorFlow, which they import inside functions only.
LAZY = ('distribute', 'common')


def _unit(module):
    """'hournas_tf.nas.supernet' -> 'nas'; commands -> 'commands'."""
    parts = module.split('.')
    if len(parts) == 1:
        return 'commands'
    if parts[1] in RANKS:
        return parts[1]
    return 'commands'  # search, describe, train, export, report, __main__


def _modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE.parent).with_suffix('')
        parts = list(rel.parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        yield '.'.join(parts), path


def _imports(path):
    """(module imported, line, at module level) for every hournas_tf import."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith('hournas_tf'):
            names = [node.module + '.' + a.name for a in node.names]
            if node.module == 'hournas_tf':
                for name in names:
                    yield name, node.lineno, id(node) in top
            else:
                yield node.module, node.lineno, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('hournas_tf'):
                    yield alias.name, node.lineno, id(node) in top


def test_imports_only_go_down():
    bad = []
    for module, path in _modules():
        unit = _unit(module)
        if module == 'hournas_tf':
            continue  # the package API re-exports from every layer
        for target, line, _ in _imports(path):
            other = _unit(target)
            if other == unit:
                continue
            if RANKS[other] >= RANKS[unit]:
                bad.append(f'{path.name}:{line} {module} ({unit}) imports '
                           f'{target} ({other})')
    assert not bad, '\n'.join(bad)


def _module_names(nodes):
    """The modules imported by the import statements among `nodes`."""
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize('unit', PURE)
def test_pure_layers_never_import_tensorflow_or_keras(unit):
    for path in _paths(unit):
        tree = ast.parse(path.read_text())
        for name in _module_names(ast.walk(tree)):
            assert name.split('.')[0] not in ('tensorflow', 'keras'), \
                f'{path}: imports {name}'


def _paths(unit):
    """The module files of `unit`: a module, or a folder's modules."""
    single = PACKAGE / f'{unit}.py'
    return [single] if single.exists() else sorted(
        (PACKAGE / unit).rglob('*.py'))


@pytest.mark.parametrize('unit', LAZY)
def test_lazy_layers_import_tensorflow_inside_functions_only(unit):
    for path in _paths(unit):
        for name in _module_names(ast.parse(path.read_text()).body):
            assert name.split('.')[0] not in ('tensorflow', 'keras'), \
                f'{path}: imports {name} at module level'


def test_layout_check_catches_an_upward_import(tmp_path):
    """The check itself can fail: a spaces module importing nas is caught."""
    path = tmp_path / 'bad.py'
    path.write_text('from hournas_tf.nas import supernet\n')
    targets = [t for t, _, _ in _imports(path)]
    assert targets == ['hournas_tf.nas']
    assert RANKS[_unit(targets[0])] > RANKS[_unit('hournas_tf.spaces.bad')]


def test_every_folder_of_the_package_has_a_rank():
    folders = {p.name for p in PACKAGE.iterdir()
               if p.is_dir() and (p / '__init__.py').exists()}
    assert folders <= set(RANKS), sorted(folders - set(RANKS))


TOOLS = PACKAGE.parent / 'tools'


def _private_uses(tree):
    """The private names of hournas_tf that a module uses: `_x` imported
    from it, or `module._x` of a hournas_tf module it imported."""
    bound, bad = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith('hournas_tf'):
            for alias in node.names:
                if alias.name.startswith('_'):
                    bad.append(f'{node.lineno}: {node.module}.{alias.name}')
                bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('hournas_tf'):
                    bound.add(alias.asname or alias.name.split('.')[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith('_') \
                and not node.attr.startswith('__'):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                bad.append(f'{node.lineno}: {ast.unparse(node)}')
    return sorted(bad, key=lambda line: int(line.split(':')[0]))


def _edits_sys_path(tree):
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == 'path'
            and isinstance(node.value, ast.Name) and node.value.id == 'sys']


@pytest.mark.parametrize('path', sorted(TOOLS.glob('*.py')),
                         ids=lambda p: p.name)
def test_tools_use_public_names_and_leave_sys_path_alone(path):
    tree = ast.parse(path.read_text())
    assert not _private_uses(tree), _private_uses(tree)
    assert not _edits_sys_path(tree), f'sys.path at lines ' \
        f'{_edits_sys_path(tree)}'
    assert not [n for n in _module_names(ast.walk(tree))
                if n.split('.')[0] in ('tests', 'conftest', 'fuzzing')]


def test_tool_checks_catch_private_names_and_sys_path():
    """The checks themselves can fail."""
    tree = ast.parse(
        'import sys\n'
        'from hournas_tf.nas import search_lib\n'
        'from hournas_tf.nas.search_lib import _space\n'
        'import hournas_tf.nas.derive\n'
        'sys.path.insert(0, "..")\n'
        'search_lib._space(None)\n'
        'hournas_tf.nas.derive._x\n'
        'other._private\n')
    assert _private_uses(tree) == [
        '3: hournas_tf.nas.search_lib._space', '6: search_lib._space',
        '7: hournas_tf.nas.derive._x']
    assert _edits_sys_path(tree) == [5]
