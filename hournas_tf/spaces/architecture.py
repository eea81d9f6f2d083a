"""Architectures: a space, its parameters and one op per layer (pure Python).

Two interchangeable forms:
- a versioned JSON file (`format: hournas_tf.architecture`, `version: 1`),
  which may carry extra sections (search results) that loading ignores;
- a compact string, `space[key=value,...]:op,op,...`, e.g.
  `fbnet[image_size=32,num_classes=10]:k3_e1,k3_e6,...`; parameters at their
  default are left out.
"""

import dataclasses

from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.common.jsonio import read_json
from hournas_tf.spaces import macros

FORMAT = 'hournas_tf.architecture'
VERSION = 1

_PARAMS = ('image_size', 'num_classes', 'width_multiplier', 'head_channels')
_DEFAULTS = {'image_size': 224, 'num_classes': 1000, 'width_multiplier': 1.0,
             'head_channels': None}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One op per searchable layer of a search space."""

    space: str
    ops: tuple
    image_size: int = 224
    num_classes: int = 1000
    width_multiplier: float = 1.0
    head_channels: int = None
    name: str = None

    def __post_init__(self):
        object.__setattr__(self, 'ops', tuple(self.ops))
        space = self.search_space()
        if len(self.ops) != len(space.layers):
            raise UserError(
                f'architecture has {len(self.ops)} ops but space '
                f'{self.space!r} has {len(space.layers)} searchable layers')
        for i, op in enumerate(self.ops):
            space.check_op(i, op)

    def search_space(self):
        return macros.get_space(self.space, **self.space_params())

    def space_params(self):
        return {k: getattr(self, k) for k in _PARAMS}

    def to_json(self):
        """A JSON-ready dict (the file format)."""
        out = {'format': FORMAT, 'version': VERSION, 'space': self.space}
        out.update(self.space_params())
        if self.name:
            out['name'] = self.name
        out['ops'] = list(self.ops)
        out['string'] = self.to_string()
        return out

    @classmethod
    def from_json(cls, data):
        if not isinstance(data, dict):
            raise UserError('architecture JSON must be an object with '
                            '"space" and "ops"')
        if data.get('format', FORMAT) != FORMAT:
            raise UserError(f'not an architecture file: format '
                            f'{data.get("format")!r}, expected {FORMAT!r}')
        version = data.get('version', VERSION)
        if version != VERSION:
            raise UserError(f'unsupported architecture file version '
                            f'{version!r}; valid: {VERSION}')
        for key in ('space', 'ops'):
            if key not in data:
                raise UserError(f'architecture JSON lacks the {key!r} field')
        if not isinstance(data['ops'], list):
            raise UserError('architecture "ops" must be a list of op names')
        name = data.get('name')
        if name is not None and not isinstance(name, str):
            raise UserError(f'architecture "name" {name!r} must be a string')
        kwargs = {k: data[k] for k in _PARAMS if data.get(k) is not None}
        return cls(space=data['space'], ops=tuple(data['ops']),
                   name=name, **kwargs)

    def to_string(self):
        params = [f'{k}={getattr(self, k)}' for k in _PARAMS
                  if getattr(self, k) != _DEFAULTS[k]]
        head = self.space + (f'[{",".join(params)}]' if params else '')
        return f'{head}:{",".join(self.ops)}'

    @classmethod
    def from_string(cls, text):
        head, sep, ops = str(text).strip().partition(':')
        if not sep or not ops:
            raise UserError(f'malformed architecture string {text!r}: '
                            'expected space[key=value,...]:op,op,...')
        space, _, params = head.partition('[')
        kwargs = {}
        if params:
            if not params.endswith(']'):
                raise UserError(f'malformed architecture string {text!r}: '
                                'unclosed [')
            for item in filter(None, params[:-1].split(',')):
                key, _, value = item.partition('=')
                if key not in _PARAMS:
                    raise UserError(f'unknown architecture parameter {key!r}; '
                                    f'valid: {choices(_PARAMS)}')
                try:
                    kwargs[key] = (float(value) if key == 'width_multiplier'
                                   else int(value))
                except ValueError:
                    raise UserError(f'invalid {key} {value!r} in '
                                    f'architecture string') from None
        return cls(space=space, ops=tuple(ops.split(',')), **kwargs)

    def save(self, path, extra=None):
        """Writes the JSON file; `extra` adds sections (e.g. search results)."""
        data = self.to_json()
        data.update(extra or {})
        jsonio.write_json(path, data)


def load_architecture(path):
    """Reads an architecture JSON file (errors name the file)."""
    data = read_json(path, 'architecture file')
    try:
        return Architecture.from_json(data)
    except UserError as e:
        raise UserError(f'architecture file {path!r}: {e}') from None
