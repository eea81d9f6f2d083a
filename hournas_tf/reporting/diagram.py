"""An inline SVG block diagram of an architecture (pure Python).

Stem, every searchable layer, head and classifier as boxes in reading
order, wrapped into rows; vital blocks filled, layers with an identity
shortcut marked `+x`, `skip` layers dashed.
"""

import html

from hournas_tf.spaces import vital as vital_lib

BOX_W, BOX_H, GAP_X, GAP_Y, PER_ROW = 132, 58, 22, 26, 7
VITAL_FILL, PLAIN_FILL, SKIP_FILL = '#f4a259', '#bcd4e6', '#ffffff'


def blocks(arch):
    """[(name, op text, detail, vital, shortcut, skip)] in order."""
    space = arch.search_space()
    vital = set(vital_lib.vital_blocks(vital_lib.block_graph(space)))
    out = [('stem', f'conv {space.stem.kernel}x{space.stem.kernel}',
            f'3\u2192{space.stem.c_out} s{space.stem.stride}',
            'stem' in vital, False, False)]
    for layer, op in zip(space.layers, arch.ops):
        name = f'layer{layer.index + 1}'
        out.append((f'L{layer.index + 1}', op,
                    f'{layer.c_in}\u2192{layer.c_out} s{layer.stride}',
                    name in vital, layer.has_shortcut, op == 'skip'))
    out.append(('head', 'conv 1x1',
                f'{space.layers[-1].c_out}\u2192{space.head_channels}',
                'head' in vital, False, False))
    out.append(('classifier', 'pool + dense',
                f'{space.head_channels}\u2192{space.num_classes}',
                'classifier' in vital, False, False))
    return out


def _text(x, y, value, size=11, weight='normal'):
    return (f'<text x="{x}" y="{y}" font-size="{size}" '
            f'font-weight="{weight}" text-anchor="middle" '
            f'font-family="sans-serif">{html.escape(value)}</text>')


def block_diagram(arch):
    """The SVG markup (a string) of `arch`."""
    items = blocks(arch)
    rows = -(-len(items) // PER_ROW)
    width = PER_ROW * (BOX_W + GAP_X) + GAP_X
    height = rows * (BOX_H + GAP_Y) + GAP_Y + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram" '
             f'width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="block diagram of {html.escape(arch.space)}">']
    for k, (name, op, detail, vital, shortcut, skip) in enumerate(items):
        row, col = divmod(k, PER_ROW)
        x, y = GAP_X + col * (BOX_W + GAP_X), GAP_Y + row * (BOX_H + GAP_Y)
        fill = VITAL_FILL if vital else SKIP_FILL if skip else PLAIN_FILL
        dash = ' stroke-dasharray="4 3"' if skip else ''
        parts.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" '
                     f'height="{BOX_H}" rx="6" fill="{fill}" '
                     f'stroke="#333"{dash}/>')
        cx = x + BOX_W // 2
        parts.append(_text(cx, y + 16, name + (' (vital)' if vital else ''),
                           11, 'bold'))
        parts.append(_text(cx, y + 33, op, 11))
        parts.append(_text(cx, y + 49, detail, 10))
        if shortcut:
            parts.append(f'<text x="{x + BOX_W - 4}" y="{y + 12}" '
                         'font-size="10" text-anchor="end" '
                         'font-family="sans-serif" fill="#555">+x</text>')
        if k + 1 < len(items) and col + 1 < PER_ROW:
            ay = y + BOX_H // 2
            parts.append(f'<line x1="{x + BOX_W}" y1="{ay}" '
                         f'x2="{x + BOX_W + GAP_X}" y2="{ay}" '
                         'stroke="#333" marker-end="url(#arrow)"/>')
    parts.insert(1, '<defs><marker id="arrow" markerWidth="8" '
                 'markerHeight="8" refX="7" refY="4" orient="auto">'
                 '<path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>')
    ly = height - 10
    parts.append(f'<rect x="{GAP_X}" y="{ly - 10}" width="14" height="12" '
                 f'fill="{VITAL_FILL}" stroke="#333"/>')
    parts.append(f'<text x="{GAP_X + 20}" y="{ly}" font-size="11" '
                 'font-family="sans-serif">vital block (on every '
                 'input-to-output path)   +x identity shortcut   dashed: '
                 'skip</text>')
    parts.append('</svg>')
    return '\n'.join(parts)
