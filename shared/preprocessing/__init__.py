"""DESIGN.md's preprocessing, shared so sites (real CT) and the coordinator (phantom datasets only)
apply exactly the same steps."""

from shared.preprocessing.box import BoxSpec, Preprocessed, PreprocessingError, preprocess

__all__ = ["BoxSpec", "Preprocessed", "PreprocessingError", "preprocess"]
