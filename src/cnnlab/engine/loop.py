"""The training loop shared by the labs: epochs of a Task, validation, run dir, resume, DDP.

A Task supplies batches and per-batch statistics; the loop owns optimisation, schedules,
mixed precision, checkpoints, metric logging and exact resumption.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from cnnlab.engine.card import ModelCard
from cnnlab.engine.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from cnnlab.engine.config import OptimConfig
from cnnlab.engine.device import autocast, make_grad_scaler, unwrap_model
from cnnlab.engine.distributed import (
    SINGLE_PROCESS,
    DistInfo,
    all_reduce_sums,
    barrier,
    broadcast_buffers,
)
from cnnlab.engine.optim import LRSchedule, build_optimizer, clip_gradients
from cnnlab.engine.rundir import RunDir
from cnnlab.errors import CheckpointError, ConfigError


class Task(Protocol):
    """What a lab supplies to the loop."""

    best_metric: str  # key of summarize()'s result used to pick the best checkpoint
    # keys of loss_and_stats()'s statistics, "count" (examples) among them: every rank reduces
    # all of them, even a rank whose validation share is empty
    stat_keys: tuple[str, ...]
    best_mode: str  # "max" or "min"

    def num_train_batches(self) -> int: ...

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterable[Any]:
        """The epoch's batches; ``generator`` is the loop's (saved for exact resume), ``epoch``
        lets a task seed per epoch instead (workers cannot share one generator)."""
        ...

    def val_batches(self) -> Iterable[Any]: ...

    def batch_size_of(self, batch: Any) -> int: ...

    def loss_and_stats(self, model: nn.Module, batch: Any, train: bool
                       ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]: ...

    def summarize(self, sums: dict[str, float]) -> dict[str, float]: ...

    def format_validation(self, sums: dict[str, float]) -> str: ...


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    last_val: dict[str, float] | None = None  # validation sums of the final weights, if run


def _rng_states(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _restore_rng(states: dict[str, torch.Tensor], generator: torch.Generator,
                 device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["data"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


ESTIMATE_AFTER = 4  # steps, at the start of a session, before the time per epoch is estimated
LONG_EPOCH = 120.0  # seconds: shorter epochs need no estimate (their lines come soon enough)


def _estimate(log: Callable[[str], None], seconds_per_step: float, steps_per_epoch: int,
              epochs_left: int) -> None:
    """Say early how long a long run will take: a CPU may need hours for a GPU-scale recipe."""
    epoch_seconds = seconds_per_step * steps_per_epoch
    if epoch_seconds < LONG_EPOCH:
        return
    log(f"note: {seconds_per_step:.1f} s per step, so about {_duration(epoch_seconds)} per "
        f"epoch and {_duration(epoch_seconds * epochs_left)} for the {epochs_left} epoch(s) "
        "of this session, validation not included")


def _duration(seconds: float) -> str:
    """Seconds as s, min or h, whichever reads best."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _accumulate(sums: dict, stats: dict) -> None:
    """Add a batch's statistics; tensors stay on the device (no sync per batch)."""
    for key, value in stats.items():
        sums[key] = sums.get(key, 0.0) + (value.detach() if torch.is_tensor(value) else value)


def _reduced(sums: dict, task: Task, info: DistInfo, device: torch.device) -> dict[str, float]:
    """Plain floats, summed over ranks: one conversion per epoch instead of per batch. Empty
    when no rank saw an example."""
    totals = all_reduce_sums({k: float(sums.get(k, 0.0)) for k in task.stat_keys}, info, device)
    return totals if totals.get("count") else {}


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, batches: Iterable[Any], device: torch.device,
             amp: str = "none", info: DistInfo = SINGLE_PROCESS, progress: bool = False
             ) -> dict[str, float]:
    """Summed statistics of a pass over ``batches`` in eval mode (all-reduced under DDP).

    The network runs outside its DDP wrapper, with rank 0's buffers (BN statistics) as DDP's
    own forward would use: DDP's forward is a collective, and a rank may have no batch.
    """
    network = unwrap_model(model)
    broadcast_buffers(network, info)
    was_training = network.training
    network.eval()
    sums: dict[str, float] = {}
    shown = tqdm(batches, desc="Validation", leave=False, dynamic_ncols=True,
                 disable=None if progress and info.is_main else True)  # terminal only
    with autocast(device, amp):
        for batch in shown:
            _, stats = task.loss_and_stats(network, batch, train=False)
            _accumulate(sums, stats)
    network.train(was_training)
    return _reduced(sums, task, info, device)


def fit(model: nn.Module, task: Task, config: OptimConfig, run_dir: RunDir,
        full_config: dict, device: torch.device, resume: bool = False,
        info: DistInfo = SINGLE_PROCESS, log: Callable[[str], None] = print,
        progress: bool = True, stop_after: int | None = None,
        card: ModelCard | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Train ``model`` (already on ``device``, possibly DDP-wrapped) on ``task``.

    ``full_config`` is written to config.json and into every checkpoint, which resume reads;
    ``card`` goes into every checkpoint with the epoch's validation metrics, which eval and
    predict read. With ``resume`` the run continues from ``last`` exactly;
    ``stop_after`` ends the session after that many epochs while the schedule keeps planning
    for ``config.epochs`` (a time-boxed run to be resumed later). ``on_epoch`` receives each
    epoch's metrics row once its checkpoints are written (a sweep's pruner may stop the run
    there by raising).
    """
    config.validate()
    bare = unwrap_model(model)  # DDP and torch.compile wrappers add prefixes to state keys
    optimizer = build_optimizer(model.parameters(), config.optimizer, config.lr,
                                config.momentum, config.weight_decay)
    steps_per_epoch = task.num_train_batches()
    if steps_per_epoch < 1:
        raise ConfigError(f"{config.batch_size}: the training data gives no full batch "
                          "(incomplete batches are dropped); lower it, or give more data",
                          parameter="batch_size")
    schedule = LRSchedule(config.schedule, config.lr, steps_per_epoch * config.epochs,
                          steps_per_epoch, tuple(config.milestones), config.gamma,
                          int(config.warmup_epochs * steps_per_epoch))
    scaler = make_grad_scaler(device, config.amp)
    generator = torch.Generator().manual_seed(config.seed)
    start_epoch, step, best, history = 0, 0, None, []

    if resume:
        last = run_dir.checkpoint("last")
        if not last.is_file():
            raise CheckpointError(f"{run_dir.path}: nothing to resume (no {last.name})")
        ckpt = load_checkpoint(last, map_location=device)
        load_model_weights(bare, ckpt["model"], last)
        if ckpt["optimizer"] is None:
            raise CheckpointError(f"{last}: no optimizer state to resume from")
        optimizer.load_state_dict(ckpt["optimizer"])
        _restore_rng(ckpt["rng"], generator, device)
        meta = ckpt["metadata"]
        start_epoch, step, best = meta["epoch"], meta["step"], meta.get("best")
        history = run_dir.read_metrics()[:start_epoch]
        if len(history) == start_epoch - 1 and meta.get("metrics"):
            history.append(meta["metrics"])  # stopped before metrics.csv caught up (old order)
        if start_epoch >= config.epochs:
            log(f"{run_dir.path}: already trained for {start_epoch} epochs")
            return FitResult(history, best)
        log(f"Resuming {run_dir.path} at epoch {start_epoch + 1}")
    if info.is_main:
        run_dir.write_config(full_config)

    end_epoch = min(config.epochs, stop_after) if stop_after else config.epochs
    val_sums = None
    for epoch in range(start_epoch, end_epoch):
        model.train()
        sums: dict[str, float] = {}
        images = 0
        started = time.perf_counter()
        bar = tqdm(task.train_batches(epoch, generator), total=steps_per_epoch,
                   desc=f"Epoch {epoch + 1}/{config.epochs}", leave=False,
                   # None: shown on a terminal only, so piped output and log files stay clean
                   disable=None if progress and info.is_main else True, dynamic_ncols=True)
        for index, batch in enumerate(bar):
            if index == 1:
                first_step_done = time.perf_counter()  # step 1 pays warm-up: time from here
            elif index == ESTIMATE_AFTER and epoch == start_epoch and info.is_main:
                _estimate(log, (time.perf_counter() - first_step_done) / (index - 1),
                          steps_per_epoch, end_epoch - epoch)
            lr = schedule.apply(optimizer, step)
            with autocast(device, config.amp):
                loss, stats = task.loss_and_stats(model, batch, train=True)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                clip_gradients(model, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            _accumulate(sums, stats)
            images += task.batch_size_of(batch)
            if not bar.disable and step % 20 == 0:  # reading device sums syncs: not every batch
                bar.set_postfix({k: f"{v:.4g}" for k, v in task.summarize(sums).items()})
        train_seconds = time.perf_counter() - started
        sums = _reduced(sums, task, info, device)
        images = int(all_reduce_sums({"n": images}, info, device)["n"])
        row = {"epoch": epoch + 1}
        row.update({f"train_{k}": v for k, v in task.summarize(sums).items()})
        val_sums = evaluate(model, task, task.val_batches(), device, config.amp, info, progress)
        if val_sums:
            row.update({f"val_{k}": v for k, v in task.summarize(val_sums).items()})
            log(task.format_validation(val_sums))
        row.update({"lr": lr, "seconds": round(time.perf_counter() - started, 3),
                    # 4 significant digits: a CPU epoch of PSMNet runs at 0.1-0.3 images/s
                    "images_per_s": float(f"{images / max(train_seconds, 1e-9):.4g}")})
        history.append(row)
        key = f"val_{task.best_metric}" if val_sums else f"train_{task.best_metric}"
        better = (best is None or (row[key] > best["value"] if task.best_mode == "max"
                                   else row[key] < best["value"]))
        if better:
            best = {"epoch": epoch + 1, "metric": key, "value": row[key]}
        if info.is_main:
            meta = {"config": full_config, "epoch": epoch + 1, "step": step, "best": best,
                    "metrics": row}
            if card is not None:
                meta["card"] = epoch_card(card, row).to_dict()
            # "last" is written last: a run stopped between these writes resumes from the
            # epoch before and redoes this one exactly, so best and metrics.csv stay in step
            if better:
                save_checkpoint(run_dir.checkpoint("best"), bare.state_dict(), meta)
            run_dir.write_metrics(history)
            run_dir.plot_curves(history, title=full_config.get("title", ""))
            save_checkpoint(run_dir.checkpoint("last"), bare.state_dict(), meta,
                            optimizer.state_dict(), _rng_states(generator, device))
            summary = ", ".join(f"{k} {_figure(v)}" for k, v in row.items()
                                if k not in ("epoch",) and isinstance(v, float))
            log(f"Epoch {epoch + 1}/{config.epochs}: {summary}")
        if on_epoch is not None:
            on_epoch(row)
        barrier(info)
    return FitResult(history, best, val_sums or None)


def _figure(value: float) -> str:
    """4 significant digits, without an exponent for the counts a person reads (46,910
    images/s, not 4.691e+04)."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def epoch_card(card: ModelCard, row: dict) -> ModelCard:
    """``card`` with the validation metrics of the epoch in ``row`` (a metrics.csv row)."""
    values = {k.removeprefix("val_"): v for k, v in row.items() if k.startswith("val_")}
    metrics = [{"data": card.training.get("validation", "validation data"), "values": values,
                "note": f"after epoch {row['epoch']}"}] if values else []
    return card.with_changes(metrics=metrics,
                             training={**card.training, "epochs_trained": row["epoch"]})

