"""Checkpoints: reading YOLOv5 and nas weights safely (allow-list unpickler), writing YOLOv5 v7.0 checkpoints."""

from nas.weights.checkpoint import (
    FORMATS,
    Checkpoint,
    InertModule,
    checkpoint_bytes,
    read_checkpoint,
    write_checkpoint,
)

__all__ = ["FORMATS", "Checkpoint", "InertModule", "checkpoint_bytes", "read_checkpoint", "write_checkpoint"]
