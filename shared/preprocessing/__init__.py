"""DESIGN.md's preprocessing, shared so sites (real CT) and the coordinator (phantom datasets only)
apply exactly the same steps."""

from shared.preprocessing.cube import CubeSpec, Preprocessed, PreprocessingError, preprocess

__all__ = ["CubeSpec", "Preprocessed", "PreprocessingError", "preprocess"]
