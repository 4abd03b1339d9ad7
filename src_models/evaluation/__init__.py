"""Evaluation harness: dataset readers, metrics, protocols, simulated annotator, benchmarks.

Everything runs through the public engine (:func:`src_models.engine.propagate`) and any
backend of the registry, so every backend is measured the same way.
"""
