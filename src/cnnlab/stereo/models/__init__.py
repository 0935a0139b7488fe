"""Stereo networks: ``create_model(name, **kwargs)`` builds them from the registry, which the
model modules imported here fill."""

from cnnlab.stereo.models.psmnet import PSMNet, PSMNetConfig
from cnnlab.stereo.models.registry import MODELS, create_model, get_entry

__all__ = ["MODELS", "PSMNet", "PSMNetConfig", "create_model", "get_entry"]
