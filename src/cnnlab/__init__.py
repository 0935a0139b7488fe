"""cnnlab: classic CNN classification, PSMNet stereo and from-scratch operators.

The public faces, one per lab, each with its own ``__all__``: ``cnnlab.classify``,
``cnnlab.stereo``, ``cnnlab.basics``, ``cnnlab.exercises``; and ``cnnlab.setup()``, which
finds the data and weights. Everything else may change without notice.
"""

from cnnlab.workspace import Setup, setup

__version__ = "0.1.0"
__all__ = ["Setup", "__version__", "setup"]
