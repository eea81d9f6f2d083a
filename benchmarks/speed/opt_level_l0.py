"""Runs a command module with TensorFlow's classic graph optimizer at
OptimizerOptions.L0 (no common-subexpression elimination or constant
folding when a function is instantiated), or at its default L1.

    python benchmarks/speed/opt_level_l0.py L0 hournas_tf.search \\
        --strategy=mirrored --cpu_replicas=2 --sync_batch_norm \\
        --vital_ops=max --nonvital_epochs=1 --max_steps_per_epoch=2 \\
        --batch_size=16 --proposal_iters=50 --num_proposals=2 \\
        --verbose=0 --output_dir=/tmp/sb0
    python benchmarks/speed/opt_level_l0.py L1 hournas_tf.search ... \\
        --output_dir=/tmp/sb1

TensorFlow 2.21 has no public setting for these options; this sets the
eager context's `ConfigProto` (a private attribute) before the context
starts. A measurement, not a feature (docs/speed.md, "Sync batch norm's
first step").
"""

import runpy
import sys


def main():
    level, module = sys.argv[1], sys.argv[2]
    if level == 'L0':
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context

        config = config_pb2.ConfigProto()
        config.graph_options.optimizer_options.opt_level = (
            config_pb2.OptimizerOptions.L0)
        context.context()._config = config  # noqa: SLF001
    elif level != 'L1':
        print(f'error: level {level!r}; valid: L0, L1', file=sys.stderr)
        sys.exit(2)
    sys.argv = [module.replace('.', '/') + '.py', *sys.argv[3:]]
    runpy.run_module(module, run_name='__main__')


if __name__ == '__main__':
    main()
