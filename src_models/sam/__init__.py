"""Segment Anything (segment-anything package): building, cached embeddings, PerSAM, PerSAM-F.

Modules: ``build`` (models + weights), ``predictor`` (encoder / prompted head split, its
embeddings optionally on disk through :mod:`src_models.disk_cache`),
``persam_decoder`` (PerSAM's decoder changes by
subclassing), ``persam`` (training-free recipe), ``persam_f`` (two learnable mask weights).
"""
