"""Vital-block analysis from the network's topology (pure Python).

HourNAS section 3.1: a block is vital when every input-to-output path passes
through it. The supernet is turned into a DAG: tensors are junction nodes,
every block (stem, searchable layer, head, classifier) is a node between two
junctions, and a layer whose shape is unchanged also gets an identity edge
that bypasses it (its residual shortcut, or the `skip` op). With the number of
paths counted from the input, P_in(v), and to the output, P_out(v), block v
lies on all P paths exactly when P_in(v) * P_out(v) == P.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class BlockGraph:
    """A DAG in topological order: `nodes` and `edges` (src, dst) pairs."""

    nodes: tuple
    edges: tuple
    blocks: tuple  # the nodes that are blocks (the rest are junctions)


def block_graph(space):
    """Builds the block DAG of a search space."""
    nodes, edges, blocks = ['input'], [], []

    def add_block(name, bypass):
        src = nodes[-1]
        nodes.append(name)
        blocks.append(name)
        dst = f'after_{name}'
        nodes.append(dst)
        edges.extend([(src, name), (name, dst)])
        if bypass:
            edges.append((src, dst))

    add_block('stem', bypass=False)
    for layer in space.layers:
        add_block(f'layer{layer.index + 1}', bypass=layer.has_shortcut)
    add_block('head', bypass=False)
    add_block('classifier', bypass=False)
    nodes.append('output')
    edges.append((nodes[-2], 'output'))
    return BlockGraph(tuple(nodes), tuple(edges), tuple(blocks))


def _count_paths(nodes, edges, source):
    count = {n: 0 for n in nodes}
    count[source] = 1
    succ = {n: [] for n in nodes}
    for src, dst in edges:
        succ[src].append(dst)
    for n in nodes:  # topological order
        for m in succ[n]:
            count[m] += count[n]
    return count


def vital_blocks(graph):
    """Names of the blocks that lie on every input-to-output path."""
    from_input = _count_paths(graph.nodes, graph.edges, 'input')
    reversed_edges = [(d, s) for s, d in graph.edges]
    to_output = _count_paths(graph.nodes[::-1], reversed_edges, 'output')
    total = from_input['output']
    return tuple(b for b in graph.blocks
                 if from_input[b] * to_output[b] == total)


def vital_layers(space):
    """0-based indices of the searchable layers that are vital."""
    names = set(vital_blocks(block_graph(space)))
    return tuple(layer.index for layer in space.layers
                 if f'layer{layer.index + 1}' in names)
