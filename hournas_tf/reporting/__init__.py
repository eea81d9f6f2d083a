"""The one-page search report (`page.write_report`): no TensorFlow."""
