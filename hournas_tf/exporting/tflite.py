"""TFLite conversion (float32, float16, int8, QAT int8) and LiteRT runs.

`convert` traces `model(image, training=False)` at batch 1 as a concrete
function and converts it through the frozen-graph path
(`from_concrete_functions` without a trackable object): the variables
become constants, batch norm folds into the convs, and only builtin ops are
allowed (`supported_ops` set explicitly). The other entry points keep
Keras variables as VAR_HANDLE ops that LiteRT never initializes (NaN
outputs) or silently allow Flex ops (docs/deploy.md); `check_builtin`
refuses any such op in the result.

`run` and `interpreter` use `ai_edge_litert`; an int8 model that XNNPACK
refuses to prepare (a requantization scale of 256 or more) runs on the
builtin kernels instead, and the fallback is recorded.
"""

import numpy as np

from hournas_tf.common.errors import UserError

MODES = ('float32', 'float16', 'int8', 'qat_int8')
# Ops that mean the file is not a plain builtin model: Flex (TF) and custom
# ops need extra runtimes; resource variables are never initialized.
REFUSED_OPS = ('CUSTOM', 'FLEX', 'VAR_HANDLE', 'READ_VARIABLE',
               'ASSIGN_VARIABLE', 'CALL_ONCE')
FLOAT32 = 0  # TensorType.FLOAT32 in the TFLite schema


def serving_function(model):
    """The batch-1 concrete function `image` -> {'logits': ...}."""
    import tensorflow as tf

    shape = (1, *model.inputs[0].shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32,
                                                name='image')])
    def serve(image):
        return {'logits': model(image, training=False)}

    return serve.get_concrete_function()


def _configure(converter, mode, calibration):
    import tensorflow as tf

    ops = tf.lite.OpsSet
    converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS]
    if mode == 'float16':
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode in ('int8', 'qat_int8'):
        # A QAT model carries its ranges: no calibration, and the int8-only
        # op set would demand it; `check_integer` verifies the result.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        if mode == 'int8':
            if calibration is None or not len(calibration):
                raise ValueError('int8 needs calibration images')
            converter.target_spec.supported_ops = [
                ops.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = lambda: (
                [calibration[i:i + 1].astype(np.float32)]
                for i in range(len(calibration)))


def convert(model, mode='float32', calibration=None):
    """TFLite flatbuffer bytes of a Keras 3 or tf_keras model.

    Args:
        model: a model with one image input (the export twin, or the QAT
            model for `qat_int8`).
        mode: 'float32', 'float16' (float16 weights, float32 compute),
            'int8' (full-integer post-training quantization, int8 input
            and output) or 'qat_int8' (a quantization-aware model: int8
            with the ranges it learned, no calibration).
        calibration: float32 images [N, S, S, 3] for 'int8' (the
            representative dataset, one image per step).

    Raises UserError when an op cannot be converted to builtin ops (for
    int8: cannot be fully quantized), naming the op.
    """
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f'unknown mode {mode!r}; valid: {MODES}')
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serving_function(model)])
    _configure(converter, mode, calibration)
    try:
        data = converter.convert()
    except Exception as e:  # noqa: BLE001 (ConverterError and friends)
        raise UserError(f'{mode} conversion failed: {_reason(e)}') from None
    check_builtin(data, mode)
    if mode in ('int8', 'qat_int8'):
        check_integer(data)
    return data


def _reason(error):
    """The informative line of a converter error."""
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip()]
    for line in lines:
        if line.startswith('TF Select ops:'):
            ops = line.split(':', 1)[1].strip()
            return (f'op {ops} has no builtin TFLite kernel (it would need '
                    'the TensorFlow Flex runtime)')
    for line in lines:
        if 'error:' in line:
            return line.split('error: ', 1)[-1][:300]
    return (lines[0] if lines else type(error).__name__)[:300]


def op_counts(data):
    """{op name: count} over every subgraph of a TFLite flatbuffer."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    counts = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            if name == 'CUSTOM':
                code = model.operatorCodes[op.opcodeIndex].customCode
                name = f'CUSTOM:{code.decode() if code else "?"}'
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def check_builtin(data, mode='float32'):
    """Raises UserError if the model has a Flex, custom or variable op."""
    refused = [op for op in op_counts(data)
               if any(op.startswith(r) or r in op for r in REFUSED_OPS)]
    if refused:
        raise UserError(f'the {mode} TFLite model has ops that are not '
                        f'plain builtin ops: {", ".join(refused)}')


def float_ops(data):
    """Sorted names of the ops that read or write a float32 tensor
    (QUANTIZE and DEQUANTIZE left out)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    found = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            tensors = [t for t in (*op.inputs, *op.outputs) if t >= 0]
            if name not in ('QUANTIZE', 'DEQUANTIZE') and any(
                    subgraph.tensors[t].type == FLOAT32 for t in tensors):
                found.add(name)
    return sorted(found)


def check_integer(data):
    """Raises UserError unless every op of an int8 model is integer."""
    ops = float_ops(data)
    if ops:
        raise UserError(f'op {", ".join(ops)} cannot be fully int8-'
                        'quantized (the int8 model would run it in float32);'
                        ' leave tflite_int8 and tflite_qat out of --formats')


def _delegate_error(error):
    return 'XNNPACK' in str(error) or 'delegate' in str(error).lower()


def interpreter(data, threads=1):
    """(allocated LiteRT Interpreter, delegate) for TFLite bytes.

    `delegate` is 'xnnpack' (the default CPU delegate) or 'builtin' when
    XNNPACK refused to prepare the model and the builtin kernels run it.
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.interpreter import OpResolverType

    try:
        it = Interpreter(model_content=bytes(data), num_threads=threads)
        it.allocate_tensors()
        return it, 'xnnpack'
    except RuntimeError as e:
        if not _delegate_error(e):
            raise
    it = Interpreter(
        model_content=bytes(data), num_threads=threads,
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    it.allocate_tensors()
    return it, 'builtin'


def quantize_input(images, detail):
    """Float images as the model's input dtype (int8: scale, zero point)."""
    if detail['dtype'] == np.float32:
        return images.astype(np.float32)
    scale, zero = detail['quantization']
    info = np.iinfo(detail['dtype'])
    return np.clip(np.round(images / scale + zero), info.min,
                   info.max).astype(detail['dtype'])


def dequantize_output(values, detail):
    """Model outputs as float32 (int8: scale, zero point)."""
    if detail['dtype'] == np.float32:
        return values.astype(np.float32)
    scale, zero = detail['quantization']
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def run(data, images, threads=1):
    """Float logits [N, classes] of a batch-1 model, one image at a time."""
    it, _ = interpreter(data, threads)
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    logits = []
    for i in range(len(images)):
        it.set_tensor(inp['index'], quantize_input(images[i:i + 1], inp))
        it.invoke()
        logits.append(dequantize_output(it.get_tensor(out['index']), out))
    return np.concatenate(logits)
