"""Segment Anything (segment-anything package): building, cached embeddings, PerSAM, PerSAM-F.

Modules: ``build`` (models + weights), ``predictor`` (encoder / prompted head split),
``disk_cache`` (embeddings on disk), ``persam_decoder`` (PerSAM's decoder changes by
subclassing), ``persam`` (training-free recipe), ``persam_f`` (two learnable mask weights).
"""
