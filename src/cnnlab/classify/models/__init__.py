"""Model zoo: ``create_model(name, **kwargs)`` is the only way to build a network."""

from cnnlab.classify.models.registry import MODELS, ModelEntry, create_model, get_entry

__all__ = ["MODELS", "ModelEntry", "create_model", "get_entry"]
