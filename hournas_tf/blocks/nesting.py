"""The layers nested in a Keras layer or model, through public API only.

Keras 3 lists a model's direct layers (`Model.layers`) but has no public
list of the layers inside a custom layer; its own private
`_flatten_layers` reads the attributes Keras tracks. `nested_layers` does
the same from the attributes themselves.
"""

import keras


def nested_layers(layer):
    """Every layer inside `layer` (not `layer` itself), each once, depth
    first: the Keras layers its attributes hold, directly or in lists,
    tuples and dicts (what Keras tracks), and the layers inside those."""
    seen, found = {id(layer)}, []

    def visit(value):
        if isinstance(value, keras.layers.Layer):
            if id(value) in seen:
                return
            seen.add(id(value))
            found.append(value)
            for item in vars(value).values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    for value in vars(layer).values():
        visit(value)
    return found
