"""A sweep's report (Markdown + PNG): the trials, the best settings and their test figure
against the base recipe's, which settings mattered (Optuna's PED-ANOVA importances: which
settings separate the best trials from the rest; fANOVA would need scikit-learn) and how each
one moved the result: the text a student would otherwise write by hand for "what helped"."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.engine.atomic import atomic_write, atomic_write_json, atomic_write_text
from cnnlab.engine.sweep import BASELINE, Param


def _rank(values: list[float]) -> np.ndarray:
    """Ranks, tied values sharing their average rank."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation (ties share their average rank): how monotonically y follows x; NaN
    when either side never varies."""
    if len(x) < 3:
        return float("nan")
    rx, ry = _rank(x), _rank(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def summarize(study, space: list[Param], key: str) -> dict:
    """The numbers of the report: trials, best, baseline, importances, effects."""
    import optuna

    state = optuna.trial.TrialState
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.state in (state.COMPLETE, state.PRUNED, state.FAIL)]
    complete = [t for t in trials if t.state == state.COMPLETE]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    rows = [{"number": t.number, "value": t.value,
             "state": ("interrupted" if t.user_attrs.get("interrupted")
                       else t.state.name.lower()),
             "last_reported": (t.intermediate_values[max(t.intermediate_values)]
                               if t.intermediate_values else None),
             "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
             "seconds": t.user_attrs.get("seconds"), "params": t.params,
             "test": {k: v for k, v in t.user_attrs.get("test", {}).items()
                      if isinstance(v, float)},
             "baseline": bool(t.user_attrs.get(BASELINE)),
             "run_dir": t.user_attrs.get("run_dir")} for t in trials]
    summary: dict[str, Any] = {"objective": key, "direction": "maximize" if maximize
                               else "minimize", "trials": rows,
                               "counts": {s: sum(r["state"] == s for r in rows)
                                          for s in ("complete", "pruned", "fail",
                                                    "interrupted")},
                               "space": [str(p) for p in space]}
    if complete:
        best = study.best_trial
        summary["best"] = next(r for r in rows if r["number"] == best.number)
    baselines = [r for r in rows if r["baseline"]]  # an interrupted one was tried again
    summary["baseline"] = next((r for r in baselines if r["state"] in ("complete", "pruned")),
                               baselines[0] if baselines else None)
    importances = {}
    if len(complete) >= 2:
        try:
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        except (RuntimeError, ValueError, ZeroDivisionError):
            importances = {}
    summary["importances"] = {k: float(v) for k, v in importances.items()}
    effects = {}
    for param in space:
        points = [(t.params[param.name], t.value) for t in complete if param.name in t.params]
        if param.kind == "choice":
            groups = {}
            for value, result in points:
                groups.setdefault(value, []).append(result)
            effects[param.name] = {"kind": "choice", "groups": {
                value: {"mean": float(np.mean(v)), "count": len(v), "best": float(
                    max(v) if maximize else min(v))} for value, v in groups.items()}}
        else:
            xs = [math.log10(v) if param.kind == "log" else float(v) for v, _ in points]
            rho = spearman(xs, [r for _, r in points])
            effects[param.name] = {"kind": param.kind, "count": len(points),
                                   "spearman": rho if math.isfinite(rho) else None}
    summary["effects"] = effects
    return summary


def findings(summary: dict) -> list[str]:
    """Sentences from the numbers: the gain over the base recipe, what mattered, and how."""
    lines = []
    key, maximize = summary["objective"], summary["direction"] == "maximize"
    best, baseline = summary.get("best"), summary.get("baseline")
    counts = summary["counts"]
    lines.append(f"{len(summary['trials'])} trials: {counts['complete']} completed, "
                 f"{counts['pruned']} pruned early by the median rule, "
                 f"{counts['interrupted']} interrupted (the sweep was stopped and resumed), "
                 f"{counts['fail']} failed.")
    if best:
        test = ", ".join(f"{k} {v:.4g}" for k, v in best["test"].items())
        lines.append(f"Best: trial {best['number']}, {key} {best['value']:.4g}"
                     + (f" ({test})" if test else "") + " with "
                     + ", ".join(f"{k}={_shown(v)}" for k, v in best["params"].items()) + ".")
    if best and baseline and baseline.get("value") is not None:
        gain = best["value"] - baseline["value"]
        better = gain > 0 if maximize else gain < 0
        test_best, test_base = best["test"], baseline["test"]
        shared = [k for k in test_best if k in test_base]
        tested = "".join(f"; {k} {test_base[k]:.4g} -> {test_best[k]:.4g}" for k in shared)
        lines.append(f"Against the base recipe (trial {baseline['number']}): {key} "
                     f"{baseline['value']:.4g} -> {best['value']:.4g}"
                     + (" (better)" if better else " (no gain)") + tested + ".")
    elif baseline and baseline["state"] == "pruned":
        lines.append(f"The base recipe (trial {baseline['number']}) was pruned: worse than "
                     "the median of the earlier trials at the same epoch.")
    ranked = sorted(summary["importances"].items(), key=lambda kv: -kv[1])
    if ranked:
        lines.append(f"What mattered most (PED-ANOVA importance, from "
                     f"{counts['complete']} completed trials): " + ", ".join(
                         f"{name} {100 * value:.0f}%" for name, value in ranked) + ".")
    for name, effect in summary["effects"].items():
        if effect["kind"] == "choice" and effect["groups"]:
            groups = sorted(effect["groups"].items(), key=lambda kv: -kv[1]["mean"]
                            if maximize else kv[1]["mean"])
            lines.append(f"{name}: " + "; ".join(
                f"{value} {g['mean']:.4g} on average over {g['count']} trial"
                f"{'s' if g['count'] != 1 else ''} (best {g['best']:.4g})"
                for value, g in groups) + ".")
        elif effect["kind"] != "choice" and effect["count"] >= 3 \
                and effect["spearman"] is not None:
            rho = effect["spearman"]
            helps = (rho > 0) == maximize
            strength = "strongly" if abs(rho) >= 0.6 else "somewhat" if abs(rho) >= 0.3 \
                else "hardly"
            direction = "higher" if helps else "lower"
            lines.append(f"{name}: {direction} values {strength} did better "
                         f"(rank correlation {rho:+.2f} over {effect['count']} completed "
                         "trials)." if strength != "hardly" else
                         f"{name}: no clear trend (rank correlation {rho:+.2f} over "
                         f"{effect['count']} completed trials).")
    return lines


def _figures(study, summary: dict, space: list[Param]) -> dict[str, bytes]:
    import io

    from cnnlab.engine.plotting import pyplot

    plt = pyplot()

    def png(fig) -> bytes:
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        return buffer.getvalue()

    key, maximize = summary["objective"], summary["direction"] == "maximize"
    out = {}
    fig, ax = plt.subplots(figsize=(7, 3.6))
    best_so_far, current = [], None
    for row in summary["trials"]:
        value = row["value"] if row["state"] == "complete" else None
        if value is not None:
            current = value if current is None else (max(current, value) if maximize
                                                     else min(current, value))
        best_so_far.append(current)
        colour = {"complete": "tab:blue", "pruned": "tab:orange", "fail": "tab:red",
                  "interrupted": "tab:red"}[row["state"]]
        shown = value if value is not None else row["last_reported"]
        if shown is not None:
            ax.scatter(row["number"], shown, color=colour, zorder=3,
                       marker="*" if row["baseline"] else "o", s=90 if row["baseline"] else 30)
    ax.plot([r["number"] for r in summary["trials"]], best_so_far, color="grey",
            label="best so far")
    for label, colour in (("completed", "tab:blue"), ("pruned (last epoch reported)",
                                                      "tab:orange")):
        ax.scatter([], [], color=colour, label=label)
    ax.scatter([], [], color="tab:blue", marker="*", s=90, label="base recipe")
    ax.set_xlabel("trial")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out["history"] = png(fig)
    if summary["importances"]:
        names = list(summary["importances"])[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(names)))
        ax.barh(names, [100 * summary["importances"][n] for n in names], color="tab:blue")
        ax.set_xlabel(f"importance for {key} (%, PED-ANOVA: what sets the best trials apart)")
        out["importances"] = png(fig)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if complete:
        columns = min(3, len(space))
        rows_n = math.ceil(len(space) / columns)
        fig, axes = plt.subplots(rows_n, columns, figsize=(4 * columns, 3 * rows_n),
                                 squeeze=False)
        for ax, param in zip(axes.flat, space):
            points = [(t.params[param.name], t.value) for t in complete
                      if param.name in t.params]
            if param.kind == "choice":
                labels = list(param.choices)
                xs = [labels.index(v) for v, _ in points]
                ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
            else:
                xs = [v for v, _ in points]
                if param.kind == "log":
                    ax.set_xscale("log")
            ax.scatter(xs, [v for _, v in points], color="tab:blue")
            ax.set_xlabel(param.name)
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(space):]:
            ax.axis("off")
        out["effects"] = png(fig)
    return out


def write_sweep_report(study, space: list[Param], folder: Path, key: str,
                       summary: dict | None = None) -> list[Path]:
    """``folder/report.md`` with its PNGs in ``folder/report_files/`` and the numbers in
    ``folder/summary.json`` (``summary``: ``summarize``'s, if the caller has it); returns the
    paths."""
    folder = Path(folder)
    summary = summary or summarize(study, space, key)
    pictures = _figures(study, summary, space)
    lines = ["# Sweep report", "", f"Objective: {summary['direction']} {key}, the best epoch "
             "of each trial on the validation pairs (never the test set). Search space: "
             + ", ".join(f"`{p}`" for p in space) + ".", "", "## Findings", ""]
    lines += [f"- {line}" for line in findings(summary)] + [""]
    captions = {"history": f"{key} per trial (pruned: the last epoch it reported) and the best "
                           "so far",
                "importances": "which settings set the best trials apart (PED-ANOVA)",
                "effects": f"{key} against each setting (completed trials)"}
    for name in pictures:
        lines += [f"![{captions[name]}](report_files/{name}.png)", ""]
    test_keys = sorted({k for r in summary["trials"] for k in r["test"]})
    header = ["trial", "state", key, "epochs", "seconds", *test_keys,
              *[p.name for p in space]]
    lines += ["## Trials", "", "| " + " | ".join(header) + " |",
              "|" + "|".join("---:" for _ in header) + "|"]
    for row in summary["trials"]:
        value = row["value"] if row["value"] is not None else row["last_reported"]
        cells = [f"{row['number']}{' (base)' if row['baseline'] else ''}", row["state"],
                 f"{value:.4g}" if value is not None else "",
                 str(row["epochs"] or ""),
                 f"{row['seconds']:.0f}" if row["seconds"] is not None else "",
                 *[f"{row['test'][k]:.4g}" if k in row["test"] else "" for k in test_keys],
                 *[_shown(row["params"].get(p.name, "")) for p in space]]
        lines.append("| " + " | ".join(cells) + " |")
    written = [atomic_write_text(folder / "report.md", "\n".join(lines) + "\n")]
    for name, data in pictures.items():
        written.append(atomic_write(folder / "report_files" / f"{name}.png",
                                    lambda tmp, data=data: tmp.write_bytes(data)))
    written.append(atomic_write_json(folder / "summary.json", summary))
    return written
