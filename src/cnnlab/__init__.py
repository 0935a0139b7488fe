"""cnnlab: classic CNN classification, PSMNet stereo and from-scratch operators."""

__version__ = "0.1.0"
