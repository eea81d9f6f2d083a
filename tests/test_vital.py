import pytest

from hournas_tf import spaces
from hournas_tf.spaces import vital


def test_fbnet_vital_layers_from_topology():
    space = spaces.get_space('fbnet')
    assert [i + 1 for i in space.vital_layers] == [2, 6, 10, 14, 18, 22]
    blocks = vital.vital_blocks(vital.block_graph(space))
    assert blocks[0] == 'stem' and blocks[-2:] == ('head', 'classifier')


def _all_paths(graph):
    succ = {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        succ[s].append(d)
    paths, stack = [], [('input', ('input',))]
    while stack:
        node, path = stack.pop()
        if node == 'output':
            paths.append(set(path))
        for nxt in succ[node]:
            stack.append((nxt, path + (nxt,)))
    return paths


@pytest.mark.parametrize('name', ['fbnet', 'mnasnet', 'efficientnet'])
def test_vital_blocks_equal_brute_force_path_intersection(name):
    graph = vital.block_graph(spaces.get_space(name, image_size=32))
    paths = _all_paths(graph)
    assert len(paths) >= 2 ** 9
    common = set.intersection(*paths)
    expected = tuple(b for b in graph.blocks if b in common)
    assert vital.vital_blocks(graph) == expected


def test_skip_is_never_a_candidate_at_a_vital_layer():
    for name in spaces.SPACE_NAMES:
        space = spaces.get_space(name)
        for i in space.vital_layers:
            assert 'skip' not in space.layers[i].candidates
