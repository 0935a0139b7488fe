"""The autograd and first-principles lessons, each a function returning its measured result.

Every lesson is deterministic for a seed, returns a ``LessonResult`` with the numbers it
claims and the curves to plot; the CLI prints the summary and writes the plot.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.basics.ops import Conv2D, corr2d


@dataclass
class LessonResult:
    name: str
    summary: dict
    losses: list[float] = field(default_factory=list)
    image: torch.Tensor | None = None  # e.g. the learned kernel
    image_title: str = ""
    # what the lesson teaches, drawn over its data: {"title", "xlabel", "ylabel",
    # "points": [(x, y, label)], "lines": [(x, y, label)]}
    panel: dict | None = None
    # small matrices shown with their values, e.g. an input and its edge map: [(tensor, title)]
    grids: list[tuple[torch.Tensor, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.name}:"]
        for key, value in self.summary.items():
            if isinstance(value, float):
                value = f"{value:.6g}"
            elif isinstance(value, list):
                value = "[" + ", ".join(f"{v:.4f}" for v in value) + "]"
            out.append(f"  {key}: {value}")
        return out


def edge_detection(seed: int = 0, steps: int = 30, lr: float = 3e-2) -> LessonResult:
    """Learn the edge kernel [1, -1] from an image and its edge map by gradient descent."""
    torch.manual_seed(seed)
    x = torch.ones(6, 8)
    x[:, 2:6] = 0
    target = corr2d(x, torch.tensor([[1.0, -1.0]]))
    layer = Conv2D((1, 2), bias=False)  # as in the lesson: the edge map needs no offset
    losses = []
    for _ in range(steps):
        loss = ((layer(x) - target) ** 2).sum()
        layer.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in layer.parameters():
                p -= lr * p.grad
        losses.append(loss.item())
    kernel = layer.weight.detach()
    with torch.no_grad():
        found = layer(x)
    return LessonResult("edge_detection",
                        {"learned_kernel": kernel.flatten().tolist(),
                         "first_loss": losses[0],
                         "final_loss": losses[-1]},
                        losses, kernel, "learned kernel (target [1, -1])",
                        grids=[(x, "input X"), (target, "edges: corr2d(X, [1, -1])"),
                               (found, "corr2d(X, learned kernel)")])


def _regression_data(seed: int, n: int = 1000):
    generator = torch.Generator().manual_seed(seed)
    true_w, true_b = torch.tensor([1.0, 2.0, 3.0]), 5.0
    x = torch.randn(n, 3, generator=generator)
    y = x @ true_w + true_b + 0.01 * torch.randn(n, generator=generator)
    return x, y.unsqueeze(1)


def linear_regression_manual(seed: int = 0, epochs: int = 20, lr: float = 0.03,
                             batch_size: int = 10) -> LessonResult:
    """Minibatch SGD with hand-written updates recovers w=[1,2,3], b=5."""
    x, y = _regression_data(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    w = (0.01 * torch.randn(3, 1, generator=generator)).requires_grad_()
    b = torch.zeros(1, requires_grad=True)
    losses = []
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = ((x[index] @ w + b - y[index]) ** 2 / 2).mean()
            loss.backward()
            with torch.no_grad():
                w -= lr * w.grad
                b -= lr * b.grad
                w.grad.zero_()
                b.grad.zero_()
        with torch.no_grad():
            losses.append(((x @ w + b - y) ** 2 / 2).mean().item())
    return LessonResult("linear_regression_manual",
                        {"w": w.detach().flatten().tolist(), "b": b.item(),
                         "final_loss": losses[-1]}, losses)


def linear_regression_nn(seed: int = 0, epochs: int = 20, lr: float = 0.03,
                         batch_size: int = 10) -> LessonResult:
    """The same fit with nn.Linear, optim.SGD and MSELoss."""
    x, y = _regression_data(seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    criterion = nn.MSELoss()
    losses = []
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = criterion(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            losses.append(criterion(model(x), y).item())
    return LessonResult("linear_regression_nn",
                        {"w": model.weight.detach().flatten().tolist(), "b": model.bias.item(),
                         "final_loss": losses[-1]}, losses)


def mlp_regression(seed: int = 0, steps: int = 2000, lr: float = 1e-2) -> LessonResult:
    """An MLP 1-64-64-1 fits y = x^2 + 3 on [-3, 3]."""
    torch.manual_seed(seed)
    x = torch.linspace(-3, 3, 200).unsqueeze(1)
    y = x**2 + 3
    model = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    with torch.no_grad():
        probe = torch.tensor([[-2.0], [0.0], [1.5]])
        predictions = model(probe).flatten().tolist()
        dense = torch.linspace(-3.5, 3.5, 300).unsqueeze(1)  # a little beyond the data
        fitted = model(dense)
    panel = {"title": "fit over the data (beyond [-3, 3]: extrapolation)", "xlabel": "x",
             "ylabel": "y", "points": [(x[::5].flatten(), y[::5].flatten(), "data x^2 + 3")],
             "lines": [(dense.flatten(), fitted.flatten(), "MLP")]}
    return LessonResult("mlp_regression",
                        {"final_mse": losses[-1], "f(-2), f(0), f(1.5)": predictions,
                         "expected": [7.0, 3.0, 5.25]}, losses, panel=panel)


def load_iris01() -> tuple[torch.Tensor, torch.Tensor]:
    """The 100 iris flowers of classes 0 (setosa) and 1 (versicolor): (100, 4), (100,)."""
    text = resources.files("cnnlab.basics").joinpath("data/iris01.csv").read_text()
    rows = list(csv.reader(line for line in text.splitlines()
                                  if line and not line.startswith("#")))[1:]
    features = torch.tensor([[float(v) for v in r[:4]] for r in rows])
    labels = torch.tensor([float(r[4]) for r in rows])
    return features, labels


def logistic_regression(seed: int = 0, epochs: int = 100, lr: float = 0.1) -> LessonResult:
    """Iris 0/1 with BCELoss(sigmoid(z)); BCEWithLogitsLoss(z) gives the same value."""
    torch.manual_seed(seed)
    features, labels = load_iris01()
    features = (features - features.mean(0)) / features.std(0)
    labels = labels.unsqueeze(1)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    bce, bce_logits = nn.BCELoss(), nn.BCEWithLogitsLoss()
    losses, max_gap = [], 0.0
    for _ in range(epochs):
        logits = model(features)
        loss = bce(torch.sigmoid(logits), labels)
        max_gap = max(max_gap, abs(loss.item() - bce_logits(logits, labels).item()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = ((model(features) > 0).float() == labels).float().mean().item()
    return LessonResult("logistic_regression",
                        {"accuracy": accuracy, "final_loss": losses[-1],
                         "max |BCELoss - BCEWithLogitsLoss|": max_gap}, losses,
                        panel=_boundary_panel(model, features, labels.flatten()))


def _boundary_panel(model: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> dict:
    """The flowers on petal length and width (standardised) and the line where the model's
    probability is 1/2, with the two sepal features at their mean (0)."""
    w, b = model.weight.detach()[0], float(model.bias.detach()[0])
    length = torch.linspace(float(features[:, 2].min()) - 0.5,
                            float(features[:, 2].max()) + 0.5, 50)
    width = -(b + w[2] * length) / w[3]  # w2 * length + w3 * width + b = 0
    points = [(features[labels == k, 2], features[labels == k, 3], name)
              for k, name in ((0, "setosa (0)"), (1, "versicolor (1)"))]
    return {"title": "decision boundary p = 0.5 (sepal features at their mean)",
            "xlabel": "petal length (standardised)", "ylabel": "petal width (standardised)",
            "points": points, "lines": [(length, width, "boundary")],
            "ylim": (float(features[:, 3].min()) - 0.5, float(features[:, 3].max()) + 0.5)}


def softmax_cross_entropy(seed: int = 0, batch: int = 8, classes: int = 5) -> LessonResult:
    """Softmax from exp/sum, and cross-entropy equal to -log of the target's probability."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(batch, classes, generator=generator)
    target = torch.randint(0, classes, (batch,), generator=generator)
    exp = torch.exp(logits - logits.max(1, keepdim=True).values)
    probabilities = exp / exp.sum(1, keepdim=True)
    manual = -torch.log(probabilities[torch.arange(batch), target]).mean()
    library = F.cross_entropy(logits, target)
    return LessonResult("softmax_cross_entropy",
                        {"rows_sum_to_one": bool(torch.allclose(probabilities.sum(1),
                                                                torch.ones(batch))),
                         "manual_cross_entropy": manual.item(),
                         "F.cross_entropy": library.item(),
                         "difference": abs(manual.item() - library.item())},
                        image=probabilities, image_title="softmax probabilities (rows)")


LESSONS: dict[str, tuple[Callable[..., LessonResult], str]] = {
    "edge_detection": (edge_detection, "learn the [1, -1] edge kernel with Conv2D + corr2d"),
    "linear_regression_manual": (linear_regression_manual,
                                 "SGD by hand recovers w=[1,2,3], b=5"),
    "linear_regression_nn": (linear_regression_nn, "nn.Linear + optim.SGD + MSELoss"),
    "mlp_regression": (mlp_regression, "MLP fits y = x^2 + 3"),
    "logistic_regression": (logistic_regression,
                            "iris 0/1: BCELoss on sigmoid == BCEWithLogitsLoss"),
    "softmax_cross_entropy": (softmax_cross_entropy, "cross-entropy = -log p(target)"),
}


def plot_lesson(result: LessonResult, path) -> None:
    """Loss curve and/or image panel as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnlab.engine.atomic import atomic_write

    panels = (int(bool(result.losses)) + int(result.panel is not None) + len(result.grids)
              + int(result.image is not None))
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.8), squeeze=False)
    axes = list(axes[0])
    if result.losses:
        ax = axes.pop(0)
        ax.plot(range(1, len(result.losses) + 1), result.losses)
        ax.set_yscale("log")
        ax.set_xlabel("step / epoch")
        ax.set_ylabel("loss (log scale)")
        ax.set_title("training loss")
        ax.grid(alpha=0.3)
    if result.panel is not None:
        ax = axes.pop(0)
        panel = result.panel
        for x, y, label in panel.get("points", []):
            ax.scatter(x.numpy(), y.numpy(), s=12, label=label)
        for x, y, label in panel.get("lines", []):
            ax.plot(x.numpy(), y.numpy(), color="black", label=label)
        if "ylim" in panel:
            ax.set_ylim(*panel["ylim"])
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for grid, title in [*result.grids, *([(result.image, result.image_title)]
                                        if result.image is not None else [])]:
        _draw_grid(fig, axes.pop(0), grid, title)
    fig.suptitle(result.name)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _draw_grid(fig, ax, grid: torch.Tensor, title: str) -> None:
    """A small matrix as coloured cells with its values written in, and a colour bar."""
    shown = ax.imshow(grid.numpy(), cmap="coolwarm")
    if grid.numel() <= 64:
        for (i, j), value in _ndenumerate(grid):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(grid.shape[1]))
    ax.set_yticks(range(grid.shape[0]))
    fig.colorbar(shown, ax=ax, shrink=0.8)


def _ndenumerate(tensor: torch.Tensor):
    for i in range(tensor.shape[0]):
        for j in range(tensor.shape[1]):
            yield (i, j), float(tensor[i, j])
