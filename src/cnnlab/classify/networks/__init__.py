"""Model zoo: ``create_model(name, **kwargs)`` is the only way to build a network. Importing
the family modules here registers their models, in the order the zoo lists them."""

from cnnlab.classify.networks import mlp, simple, lenet, alexnet, vgg, googlenet, resnet  # noqa: F401, I001
from cnnlab.classify.networks.registry import MODELS, ModelEntry, create_model, get_entry

__all__ = ["MODELS", "ModelEntry", "create_model", "get_entry"]
