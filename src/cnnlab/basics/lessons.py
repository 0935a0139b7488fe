"""The autograd and first-principles lessons, each a function returning its measured result.

Every lesson is deterministic for a seed, returns a ``LessonResult`` with the numbers it
claims and the curves to plot; the CLI prints the summary and writes the plot.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.basics.ops import (
    Conv2D,
    conv_transpose2d,
    conv_transpose2d_zero_insert,
    corr2d,
    softmax_pool2d,
    trans_conv2d,
)


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
    # the answer in words, printed under the numbers it rests on
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.name}:"]
        for key, value in self.summary.items():
            if isinstance(value, float):
                value = f"{value:.6g}"
            elif isinstance(value, list):
                value = "[" + ", ".join(f"{v:.4f}" for v in value) + "]"
            out.append(f"  {key}: {value}")
        out.extend(f"  - {note}" for note in self.notes)
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


def bilinear_tent(factor: int = 2) -> torch.Tensor:
    """(2f,) linear-interpolation weights of a stride-f upsampling: [1/4, 3/4, 3/4, 1/4] for 2."""
    if factor < 2 or factor % 2:
        # an odd factor's output is not aligned with F.interpolate's by any whole padding
        raise ValueError(f"factor must be even, got {factor}")
    centre = (2 * factor - 1) / 2
    return 1 - (torch.arange(2 * factor, dtype=torch.float64) - centre).abs() / factor


def bilinear_kernel(factor: int = 2) -> torch.Tensor:
    """(2f, 2f) kernel that makes a stride-f transposed convolution with padding f/2 bilinear
    interpolation (align_corners=False) away from the border: the outer product of tents."""
    return torch.outer(bilinear_tent(factor), bilinear_tent(factor))


def transposed_convolution(seed: int = 0, size: int = 8) -> LessonResult:
    """Stride below 1: a stride-2 transposed conv upsamples x2; with the bilinear kernel it is
    bilinear interpolation, and kernel 3 stride 2 leaves a checkerboard on a constant input."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.arange(size, dtype=torch.float64)
    centre = (size - 1) / 2
    disc = (((index[:, None] - centre) ** 2 + (index[None, :] - centre) ** 2)
            <= (size / 3) ** 2).double()
    ramp = (index[:, None] + index[None, :]) / (2 * (size - 1))  # non-zero up to the border
    image = disc + ramp + 0.2 * torch.rand(size, size, generator=generator, dtype=torch.float64)
    kernel = bilinear_kernel(2)
    upsampled = trans_conv2d(image, kernel, stride=2, padding=1)
    interpolated = F.interpolate(image[None, None], scale_factor=2, mode="bilinear",
                                 align_corners=False)[0, 0]
    difference = (upsampled - interpolated).abs()
    library = F.conv_transpose2d(image[None, None], kernel[None, None], stride=2,
                                 padding=1)[0, 0]
    # stride 1/2: zeros between the pixels, then an ordinary stride-1 correlation
    as_conv = conv_transpose2d_zero_insert(image[None, None], kernel[None, None], stride=2,
                                           padding=1)[0, 0]
    general = conv_transpose2d(image[None, None], kernel[None, None], stride=2, padding=1)[0, 0]
    # a constant input, with kernels that average to 1 so the output should be 1 everywhere
    constant = torch.ones(size, size, dtype=torch.float64)
    uneven = trans_conv2d(constant, torch.full((3, 3), (2 / 3) ** 2, dtype=torch.float64),
                          stride=2, padding=1)
    even = trans_conv2d(constant, torch.full((4, 4), (2 / 4) ** 2, dtype=torch.float64),
                        stride=2, padding=1)
    # the outer 2 pixels see fewer input pixels (zero padding), whatever the kernel
    uneven_inside, even_inside = uneven[2:-2, 2:-2], even[2:-2, 2:-2]
    uneven_variance = uneven_inside.var(unbiased=False).item()
    even_variance = even_inside.var(unbiased=False).item()
    border_difference = difference.max().item()
    interior_difference = difference[1:-1, 1:-1].max().item()
    middle = uneven.shape[0] // 2
    panel = {"title": "constant input 1: middle row of the output", "xlabel": "output column",
             "ylabel": "output value",
             "points": [], "lines": [
                 (torch.arange(uneven.shape[1]), uneven[middle], "kernel 3, stride 2"),
                 (torch.arange(even.shape[1]), even[even.shape[0] // 2], "kernel 4, stride 2")]}
    return LessonResult(
        "transposed_convolution",
        {"upsampling": f"{size}x{size} -> {upsampled.shape[0]}x{upsampled.shape[1]} "
                       "(kernel 4, stride 2, padding 1)",
         "bilinear kernel = outer(tent, tent), tent": bilinear_tent(2).tolist(),
         "max |trans_conv2d - F.interpolate| interior": interior_difference,
         "max |trans_conv2d - F.interpolate| border": border_difference,
         "max |trans_conv2d - F.conv_transpose2d|": (upsampled - library).abs().max().item(),
         "max |conv_transpose2d - F.conv_transpose2d|": (general - library).abs().max().item(),
         "max |zero insertion + conv - F.conv_transpose2d|":
             (as_conv - library).abs().max().item(),
         "constant input, kernel 3 stride 2: variance": uneven_variance,
         "constant input, kernel 3 stride 2: min, max": [uneven_inside.min().item(),
                                                         uneven_inside.max().item()],
         "constant input, kernel 4 stride 2: variance": even_variance},
        panel=panel,
        grids=[(image, f"input {size}x{size}"),
               (upsampled, "transposed conv x2, bilinear kernel"),
               (interpolated, "F.interpolate bilinear x2"),
               (difference, "|difference| (only the 1-pixel border)"),
               (uneven, "constant input, kernel 3 stride 2"),
               (even, "constant input, kernel 4 stride 2")],
        notes=[
            "Stride below 1: a transposed convolution with stride s is a convolution with "
            "stride 1/s. Put s - 1 zeros between input pixels (steps of 1/s input pixels), pad "
            "by k - 1 - p and correlate at stride 1 with the kernel flipped; it is also the "
            "gradient of a stride-s convolution with respect to its input.",
            "The bilinear kernel (tent [1/4, 3/4, 3/4, 1/4] in each direction), stride 2, "
            f"padding 1 is bilinear interpolation x2 (max difference {interior_difference:.1e} "
            "inside). On the border F.interpolate repeats the edge pixel and the transposed "
            f"conv pads with zeros (difference {border_difference:.2f}).",
            "Checkerboard artefact: with kernel 3 and stride 2 the output pixels get 1, 2 or 4 "
            "kernel taps in turn, so a constant input comes out as a period-2 pattern (variance "
            f"{uneven_variance:.3f}). Kernel 4 is a multiple of the stride, every pixel gets "
            f"the same number of taps, and the output is flat (variance {even_variance:.1g}).",
        ])


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def softmax_pooling(seed: int = 0, size: int = 8,
                    temperatures: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0,
                                                       100.0),
                    timing_shape: tuple[int, int, int, int] = (8, 64, 56, 56),
                    repeats: int = 5) -> LessonResult:
    """Softmax pooling moves from max (T -> 0) to mean (T -> inf) pooling; measure where it
    lies per temperature, which inputs get gradient, and what it costs against max/avg."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(size, size, generator=generator, dtype=torch.float64)
    batch = image[None, None]
    maximum, average = F.max_pool2d(batch, 2)[0, 0], F.avg_pool2d(batch, 2)[0, 0]
    spread = maximum - average
    moving = spread > 1e-12  # a flat window is max and mean at once
    pooled = {t: softmax_pool2d(image, 2, t) for t in temperatures}
    positions = [((pooled[t] - average)[moving] / spread[moving]).mean().item()
                 for t in temperatures]
    # where the gradient goes: max pooling picks one input per window, softmax all of them
    given = {}
    for name, pool in (("max_pool2d", lambda x: F.max_pool2d(x, 2)),
                       ("softmax_pool2d T=1", lambda x: softmax_pool2d(x, 2, 1.0))):
        x = batch.clone().requires_grad_()
        pool(x).sum().backward()
        given[name] = (x.grad != 0).double().mean().item()
    scale_gap = (softmax_pool2d(2 * image, 2) - 2 * softmax_pool2d(image, 2)).abs().max().item()
    timing_input = torch.randn(*timing_shape, generator=generator)
    with torch.no_grad():
        seconds = {"softmax_pool2d": _median_seconds(lambda: softmax_pool2d(timing_input, 2),
                                                     repeats),
                   "F.max_pool2d": _median_seconds(lambda: F.max_pool2d(timing_input, 2),
                                                   repeats),
                   "F.avg_pool2d": _median_seconds(lambda: F.avg_pool2d(timing_input, 2),
                                                   repeats)}
    over_max = seconds["softmax_pool2d"] / seconds["F.max_pool2d"]
    over_avg = seconds["softmax_pool2d"] / seconds["F.avg_pool2d"]
    shown = [t for t in (0.1, 0.3, 1.0) if t in pooled]
    panel = {"title": "softmax pooling between mean (0) and max (1)", "xscale": "log",
             "xlabel": "temperature T (log scale)",
             "ylabel": "(softmax - mean) / (max - mean)",
             "points": [(torch.tensor(temperatures), torch.tensor(positions),
                         "mean over the 2x2 windows")],
             "lines": [(torch.tensor(temperatures), torch.tensor(positions), "")],
             "ylim": (-0.05, 1.05)}
    shape = "x".join(map(str, timing_shape))
    return LessonResult(
        "softmax_pooling",
        {"temperatures": list(temperatures),
         "position between mean (0) and max (1)": positions,
         "max |T=1e-4 - max_pool2d|": (softmax_pool2d(image, 2, 1e-4) - maximum).abs().max()
             .item(),
         "max |T=1e6 - avg_pool2d|": (softmax_pool2d(image, 2, 1e6) - average).abs().max()
             .item(),
         "inputs given gradient, max_pool2d": given["max_pool2d"],
         "inputs given gradient, softmax_pool2d T=1": given["softmax_pool2d T=1"],
         "max |pool(2x) - 2 pool(x)|, softmax T=1": scale_gap,
         "timing input": f"{shape}, 2x2 stride 2, {torch.get_num_threads()} threads, "
                         f"median of {repeats}",
         "seconds softmax_pool2d": seconds["softmax_pool2d"],
         "seconds F.max_pool2d": seconds["F.max_pool2d"],
         "seconds F.avg_pool2d": seconds["F.avg_pool2d"],
         "softmax_pool2d / F.max_pool2d": over_max,
         "softmax_pool2d / F.avg_pool2d": over_avg},
        panel=panel,
        grids=[(image, f"input {size}x{size}"), (maximum, "max pooling 2x2"),
               *[(pooled[t], f"softmax pooling T={t:g}") for t in shown],
               (average, "average pooling 2x2")],
        notes=[
            "Each window's values weighted by softmax(values / T): as T -> 0 the weight goes "
            "to the largest value (max pooling), as T -> inf the weights become equal "
            "(average pooling); in between it blends the two (position above).",
            f"Why it is rare: it costs an exp per element, a sum and a division per window "
            f"({over_max:.1f}x max pooling's time, {over_avg:.1f}x average pooling's, here) "
            "and keeps the window's weights for the backward pass.",
            "It adds a temperature to tune (or learn), and its output depends on the input's "
            f"scale: pool(2x) != 2 pool(x) (gap {scale_gap:.2f}), unlike max and mean pooling.",
            "Its gradient spreads over the whole window "
            f"({given['softmax_pool2d T=1']:.0%} of the inputs get some, against "
            f"{given['max_pool2d']:.0%} for max pooling), so it neither selects the strongest "
            "response nor averages plainly, and max/avg pooling or a strided convolution "
            "already do well in practice.",
        ])


LESSONS: dict[str, tuple[Callable[..., LessonResult], str]] = {
    "edge_detection": (edge_detection, "learn the [1, -1] edge kernel with Conv2D + corr2d"),
    "linear_regression_manual": (linear_regression_manual,
                                 "SGD by hand recovers w=[1,2,3], b=5"),
    "linear_regression_nn": (linear_regression_nn, "nn.Linear + optim.SGD + MSELoss"),
    "mlp_regression": (mlp_regression, "MLP fits y = x^2 + 3"),
    "logistic_regression": (logistic_regression,
                            "iris 0/1: BCELoss on sigmoid == BCEWithLogitsLoss"),
    "softmax_cross_entropy": (softmax_cross_entropy, "cross-entropy = -log p(target)"),
    "transposed_convolution": (transposed_convolution,
                               "stride 1/2: bilinear upsampling, kernel-3 checkerboard"),
    "softmax_pooling": (softmax_pooling,
                        "softmax pooling between max and mean pooling, and its cost"),
}


def plot_lesson(result: LessonResult, path) -> None:
    """Loss curve and/or image panel as a PNG, written atomically."""
    from cnnlab.engine.plotting import pyplot

    plt = pyplot()

    from cnnlab.engine.atomic import atomic_write

    panels = (int(bool(result.losses)) + int(result.panel is not None) + len(result.grids)
              + int(result.image is not None))
    columns = panels if panels <= 5 else math.ceil(panels / 2)
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False)
    axes = list(axes.flat)
    for unused in axes[panels:]:
        unused.axis("off")
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
        lines = panel.get("lines", [])
        for x, y, label in lines:
            # one line is the model drawn over the data; several are compared in colour
            ax.plot(x.numpy(), y.numpy(), color="black" if len(lines) == 1 else None,
                    label=label or None)
        if "xscale" in panel:
            ax.set_xscale(panel["xscale"])
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
    ax.set_xticks(range(0, grid.shape[1], 1 if grid.shape[1] <= 10 else 2))
    ax.set_yticks(range(0, grid.shape[0], 1 if grid.shape[0] <= 10 else 2))
    fig.colorbar(shown, ax=ax, shrink=0.8)


def _ndenumerate(tensor: torch.Tensor):
    for i in range(tensor.shape[0]):
        for j in range(tensor.shape[1]):
            yield (i, j), float(tensor[i, j])
