"""Stereo networks: ``create_model(name, **kwargs)`` builds them from the registry."""

from cnnlab.stereo.models.psmnet import PSMNet, PSMNetConfig
from cnnlab.stereo.models.registry import MODELS, create_model

__all__ = ["MODELS", "PSMNet", "PSMNetConfig", "create_model"]
