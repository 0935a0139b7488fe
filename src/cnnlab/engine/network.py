"""Networks the user defines (a student's ``nn.Module``): how they are named in a model card,
built under a run's seed, and rebuilt from a checkpoint only from the class the caller gives.

A card never names an importable path that cnnlab would import: loading a checkpoint of a
user's network needs that network's class (or an instance) from the caller, checked by name.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cnnlab.errors import CheckpointError, ConfigError


def qualified_name(network: nn.Module | type) -> str:
    """``module.QualName`` of a network's class ("__main__.LeNet" in a notebook)."""
    cls = network if isinstance(network, type) else type(network)
    return f"{cls.__module__}.{cls.__qualname__}"


def network_factory(model: object, parameter: str = "model") -> Callable[[], nn.Module]:
    """A function that gives the network ``model`` stands for: an instance is returned as it
    is (trained from the weights it has), a class or a factory is called (built under the
    run's seed, so a run is reproducible). Anything else is a one-line error."""
    if isinstance(model, nn.Module):
        return lambda: model
    if isinstance(model, type) and not issubclass(model, nn.Module):
        raise ConfigError(f"{model.__name__} is not an nn.Module class", parameter=parameter)
    if not callable(model):
        raise ConfigError(f"expected a model name, an nn.Module or its class, got "
                          f"{type(model).__name__}", parameter=parameter)

    def build() -> nn.Module:
        try:
            network = model()
        except TypeError as exc:
            raise ConfigError(f"{getattr(model, '__name__', model)!s} cannot be built without "
                              f"arguments ({exc}); pass an instance instead, e.g. "
                              f"{parameter}=Net(...)", parameter=parameter) from None
        if not isinstance(network, nn.Module):
            raise ConfigError(f"the function returned {type(network).__name__}, not an "
                              "nn.Module", parameter=parameter)
        return network
    return build


def rebuilt_network(model: object, architecture: str, module: str, where: str
                    ) -> nn.Module:
    """The network a checkpoint of a user's network needs, from the caller's ``model`` (class,
    instance or factory), refused in one line when its class is not the one the card names."""
    if model is None:
        raise CheckpointError(f"{where}: holds the weights of {architecture}, a network defined "
                              f"in Python ({module}); pass its class: load(..., "
                              f"model={architecture})")
    network = network_factory(model)()
    if type(network).__name__ != architecture:
        raise CheckpointError(f"{where}: holds the weights of {architecture}, not of "
                              f"{type(network).__name__} (the model given)")
    return network
