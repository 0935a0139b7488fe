"""Multilayer perceptrons on flattened images."""

from __future__ import annotations

from itertools import pairwise

from torch import nn

from cnnlab.classify.networks.registry import register_model


def _mlp(sizes: list[int], activation: type[nn.Module], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:  # hidden layers only: logits stay linear
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@register_model(28, "MLP 784-50-50-10, ReLU, dropout 0.2")
def mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
        hidden: tuple[int, ...] = (50, 50), dropout: float = 0.2) -> nn.Sequential:
    """784-50-50-10 with ReLU and dropout 0.2 after each hidden layer."""
    return _mlp([in_channels * image_size**2, *hidden, num_classes], nn.ReLU, dropout)


@register_model(28, "MLP 784-256-128-10, sigmoid")
def mlp_sigmoid(in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                hidden: tuple[int, ...] = (256, 128)) -> nn.Sequential:
    """784-256-128-10 with sigmoid activations (the course's first MLP)."""
    return _mlp([in_channels * image_size**2, *hidden, num_classes], nn.Sigmoid, 0.0)
