"""Stereo networks."""

from cnnlab.stereo.models.psmnet import PSMNet, PSMNetConfig

__all__ = ["PSMNet", "PSMNetConfig"]
