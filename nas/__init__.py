"""nas: neural architecture search for YOLOv5 detectors."""

__version__ = "0.1.0"
