"""Typed errors of the training package (printed by the CLI as one line, exit code 2)."""

from __future__ import annotations

from parallelner.errors import ParallelNERError

__all__ = ["TrainingDataError", "ModelSourceError", "DeviceError"]


class TrainingDataError(ParallelNERError):
    """The data cannot be trained on (no accepted pairs, unknown labels, all too long)."""


class ModelSourceError(ParallelNERError):
    """The base model, tokenizer or adapter cannot be found or read."""


class DeviceError(ParallelNERError):
    """The config asks for a device this machine does not have (e.g. cuda without a GPU)."""
