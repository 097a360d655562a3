"""Scenario files: the model, the loader with precise errors, the runner and its report."""
