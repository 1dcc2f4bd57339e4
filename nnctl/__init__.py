"""nnctl: deep learning from first principles on NumPy, driven by YAML experiments."""

__version__ = "0.1.0"
