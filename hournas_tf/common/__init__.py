"""What every layer shares and nothing about NAS: user errors, the command
runner and its stderr handling, preemption, JSON files and provenance.

The bottom of the layering (docs/design.md): it imports nothing else of
hournas_tf, and TensorFlow only inside functions (`provenance.machine`).
"""
