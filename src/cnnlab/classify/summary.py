"""Layer-by-layer output shapes and parameter counts (like d2l's layer_summary)."""

from __future__ import annotations

import torch
from torch import nn


def layer_summary(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """Run one input through the model and record each leaf module's output shape and params."""
    rows: list[dict] = []
    hooks = []

    def record(name: str):
        def hook(module: nn.Module, _inputs, output):
            if isinstance(output, torch.Tensor):
                rows.append({"layer": name, "type": type(module).__name__,
                             "output_shape": tuple(output.shape),
                             "params": sum(p.numel() for p in module.parameters(recurse=False))})
        return hook

    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    return rows


def format_summary(rows: list[dict], total_params: int) -> str:
    width = max(len(f"{r['layer']} ({r['type']})") for r in rows)
    lines = [f"{'layer':<{width}}  {'output shape':<20} {'params':>12}"]
    for row in rows:
        label = f"{row['layer']} ({row['type']})"
        shape = "x".join(str(d) for d in row["output_shape"])
        lines.append(f"{label:<{width}}  {shape:<20} {row['params']:>12,}")
    lines.append(f"{'total':<{width}}  {'':<20} {total_params:>12,}")
    return "\n".join(lines)
