"""Issue 20, class 1: one rule per setting, kept on every way in.

Each row is a setting and a value its rule refuses; each way in (the flag, a ``--config``
file, a saved run on ``--resume``, a sweep's space, the Python API) must refuse it in one line
naming the setting, before any work starts and without writing anything. Add a row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
from tests.helpers import fresh_python

from cnnlab import classify, stereo
from cnnlab.cli import build_parser, main
from cnnlab.engine.config import OptimConfig
from cnnlab.engine.rules import Rule, rule_of
from cnnlab.errors import ConfigError

# (lab, part, setting, bad value as JSON/Python, as a flag's text, as a sweep's --param or None)
ROWS = [
    ("classify", "optim", "grad_clip", -1, "-1", "grad_clip=float:-1:1"),
    ("classify", "optim", "lr", 0, "0", "lr=float:0:0.1"),
    ("classify", "optim", "lr", float("nan"), "nan", None),
    ("classify", "optim", "momentum", 1.0, "1", "momentum=float:0.5:1"),
    ("classify", "optim", "batch_size", 0, "0", "batch_size=int:0:4"),
    ("classify", "optim", "weight_decay", -0.1, "-0.1", "weight_decay=float:-0.1:0.1"),
    ("classify", "optim", "gamma", 0, "0", "gamma=choice:0,0.5"),
    ("classify", "optim", "warmup_epochs", -1, "-1", "warmup_epochs=float:-1:1"),
    ("classify", "optim", "milestones", [0], "0", None),
    ("classify", "optim", "optimizer", "adamx", "adamx", "optimizer=choice:adam,adamx"),
    ("classify", "optim", "schedule", "sometimes", "sometimes", "schedule=choice:step,sometimes"),
    ("classify", "optim", "amp", "fp8", "fp8", "amp=choice:none,fp8"),
    ("classify", "optim", "seed", -1, "-1", None),
    ("classify", "task", "label_smoothing", 1.5, "1.5", "label_smoothing=float:0:1.5"),
    ("classify", "task", "translate", -2, "-2", "translate=int:-2:2"),
    ("classify", "task", "val_size", -1, "-1", None),
    ("classify", "task", "image_size", 0, "0", "image_size=choice:0,28"),
    ("classify", "task", "model", "nope", "nope", "model=choice:mlp,nope"),
    ("classify", "task", "dataset", "imagenet", "imagenet", None),
    ("stereo", "task", "max_disparity", 24, "24", "max_disparity=choice:24,32"),
    ("stereo", "task", "crop", [8, 64], None, "crop=choice:8x64,256x512"),
    ("stereo", "task", "workers", -1, "-1", None),
    ("stereo", "task", "gt_scale", 0, "0", None),
    ("stereo", "task", "gt_format", "tiff", "tiff", None),
    ("stereo", "task", "samples_per_epoch", 0, "0", None),
    ("stereo", "task", "val_count", -1, "-1", None),
    ("stereo", "task", "variant", "tiny", "tiny", "variant=choice:basic,tiny"),
]
IDS = [f"{r[0]}-{r[2]}={r[3]}" for r in ROWS]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refused(argv: list[str], name: str, capsys, out: Path, code: int = 1) -> str:
    """Runs the command line; asserts one error line naming ``name`` and nothing written."""
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse: refused where parsed
        got = exc.code
    err = capsys.readouterr().err.strip()
    assert got == code, err
    assert err.startswith("cnnlab: error:") and len(err.splitlines()) == 1, err
    assert name in err or _flag(name) in err, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert not out.exists(), f"{out} written by a refused command"
    return err


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_flag_refuses_it_where_it_is_parsed(row, tmp_path, capsys):
    lab, _, name, _, text, _ = row
    if text is None:
        pytest.skip("no single-value flag")
    out = tmp_path / "run"
    err = _refused([lab, "train", f"{_flag(name)}={text}", "--out", str(out)], name, capsys,
                   out, code=2)
    assert f"argument {_flag(name)}" in err


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_config_file_cannot_hold_it(row, tmp_path, capsys):
    lab, part, name, value, _, _ = row
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"lab": lab, lab: {}, "optim": {},
                                  **{(lab if part == "task" else "optim"): {name: value}}}))
    out = tmp_path / "run"
    err = _refused([lab, "train", "--config", str(config), "--out", str(out)], name, capsys,
                   out)
    assert str(config) in err


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_saved_run_cannot_resume_with_it(row, tmp_path, capsys):
    lab, part, name, value, _, _ = row
    run = tmp_path / "saved"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"lab": lab, lab: {}, "optim": {},
                                                 **{(lab if part == "task" else "optim"):
                                                    {name: value}}}))
    before = sorted(p.name for p in run.iterdir())
    try:
        code = main([lab, "train", "--resume", str(run)])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 1 and name in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("row", [r for r in ROWS if r[5]], ids=[i for r, i in zip(ROWS, IDS)
                                                                if r[5]])
def test_a_sweep_space_cannot_draw_it(row, tmp_path, capsys):
    pytest.importorskip("optuna")
    lab, _, name, _, _, param = row
    out = tmp_path / "sweep"
    err = _refused([lab, "sweep", "--param", param, "--trials", "2", "--out", str(out)],
                   name, capsys, out)
    assert f"--param {param}" in err


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_python_api_refuses_it_naming_the_argument(row, tmp_path):
    lab, _, name, value, _, _ = row
    value = tuple(value) if isinstance(value, list) else value
    out = tmp_path / "run"
    train = classify.train if lab == "classify" else stereo.train
    model = "mlp" if lab == "classify" else "psmnet"
    if name == "model":
        model, settings = value, {}
    else:
        settings = {name: value}
    with pytest.raises(ConfigError) as caught:
        train(model, "mnist" if lab == "classify" and name != "dataset" else
              settings.pop("dataset", "synthetic"), epochs=1, out=out, progress=False,
              **settings)
    message = str(caught.value)
    assert name in message and "--" not in message and len(message.splitlines()) == 1
    assert not out.exists()


def test_every_value_a_range_can_draw_is_checked(tmp_path, capsys):
    """A range's ends are checked (the rules are intervals); a rule a range cannot keep (a
    multiple of 16) needs a choice."""
    out = tmp_path / "sweep"
    err = _refused(["stereo", "sweep", "--param", "max_disparity=int:16:64", "--trials", "1",
                    "--out", str(out)], "max_disparity", capsys, out)
    assert "which a range would not keep; use max_disparity=choice:" in err
    _refused(["classify", "sweep", "--dataset", "mnist", "--param", "hflip=choice:true,false",
              "--trials", "1", "--out", str(out)], "hflip", capsys, out)
    _refused(["stereo", "sweep", "--param", "init=choice:psmnet-kitti2015,nope", "--trials", "1",
              "--out", str(out)], "nope", capsys, out)
    _refused(["classify", "sweep", "--val-size", "0", "--trials", "1", "--out", str(out)],
             "val-size", capsys, out)


COMMANDS = [["classify", "train"], ["classify", "sweep"], ["stereo", "train"],
            ["stereo", "sweep"]]
PROBES = ("-1", "0", "0.5", "1", "2", "16", "24", "1.5", "nan", "inf", "1e9", "adam", "x")


def _subparser(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _accepts(check, text: str) -> bool:
    try:
        check(text)
    except (argparse.ArgumentTypeError, ValueError, ConfigError):
        return False
    return True


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_each_flag_takes_its_settings_rule(command):
    """The flags of a recipe accept exactly what the settings' rules accept (one rule)."""
    from cnnlab.classify.settings import ClassifyConfig
    from cnnlab.stereo.training.settings import StereoConfig

    parser = _subparser(build_parser(), command)
    settings = (OptimConfig, ClassifyConfig if command[0] == "classify" else StereoConfig)
    checked = 0
    for action in parser._actions:
        owner = next((s for s in settings if rule_of(s, action.dest) is not None), None)
        if owner is None or not action.option_strings:
            continue
        rule = rule_of(owner, action.dest)
        if rule.each and action.nargs is None:  # a tuple in one text (256x512): rows above
            continue
        rule = dataclasses.replace(rule, each=False)
        for text in PROBES:
            by_flag = (text in action.choices if action.choices is not None
                       else _accepts(action.type, text))
            by_rule = _accepts(lambda t, r=rule: r.check(t if r.choices else r.kind(t), "x"),
                               text)
            assert by_flag == by_rule, (action.dest, text, by_flag, by_rule)
        checked += 1
    assert checked >= (12 if command[0] == "classify" else 16)


def test_the_torch_free_names_match_the_registries():
    import torch

    from cnnlab.classify import choices
    from cnnlab.classify.networks import MODELS
    from cnnlab.data.vision import DATASETS
    from cnnlab.engine.device import AMP_DTYPES
    from cnnlab.stereo.models import PSMNetConfig
    from cnnlab.stereo.training.settings import ARCHITECTURE

    assert tuple(MODELS) == choices.MODELS
    assert tuple(DATASETS) == choices.DATASETS
    assert tuple(n for n, s in DATASETS.items() if s.hflip) == choices.HFLIP_DATASETS
    assert {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16} == AMP_DTYPES
    assert tuple(f.name for f in dataclasses.fields(PSMNetConfig)) == ARCHITECTURE


def test_a_rule_speaks_plainly():
    assert Rule(int, 1).words() == "an integer >= 1"
    assert Rule(float, 0, 1, high_open=True).words() == "a number in [0, 1)"
    assert Rule(int, 16, multiple=16).words() == "an integer >= 16, a multiple of 16"
    with pytest.raises(ConfigError, match=r"^lr must be a number > 0, got -1$"):
        OptimConfig(lr=-1)
    with pytest.raises(ConfigError, match=r"^milestones must be integers >= 1, got \(3, 0\)$"):
        OptimConfig(milestones=(3, 0))
    with pytest.raises(ConfigError, match=r"^milestones must be integers >= 1, got 5$"):
        OptimConfig(milestones=5)
    optim = OptimConfig()
    optim.grad_clip = -1  # set by hand after the settings were made
    with pytest.raises(ConfigError, match="grad_clip"):
        optim.validate()


# class 7: files that made cnnlab fail with a traceback
def test_a_config_nested_too_deep_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text('{"lab": "classify", "optim": {"lr": ' + "[" * 100_000 + "]" * 100_000
                    + "}}")
    out = tmp_path / "run"
    err = _refused(["classify", "train", "--config", str(deep), "--out", str(out)], "deep.json",
                   capsys, out)
    assert "nested too deep" in err
    space = tmp_path / "space.json"
    space.write_text("[" * 100_000 + "]" * 100_000)
    _refused(["classify", "sweep", "--space", str(space), "--trials", "1", "--out", str(out)],
             "space.json", capsys, out)


def test_a_damaged_sweep_journal_is_one_line(tmp_path, capsys):
    pytest.importorskip("optuna")
    from cnnlab.engine.sweep import STUDY_FILE, open_study

    open_study(tmp_path, "maximize").set_user_attr("note", 1)
    journal = tmp_path / STUDY_FILE
    for damage in (journal.read_bytes()[:-30] + b"}{garbage\n", b"\xff\xfe\x00\x01 not json"):
        journal.write_bytes(damage)
        assert main(["classify", "sweep", "--dataset", "mnist", "--trials", "1", "--out",
                     str(tmp_path)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"cnnlab: error: {journal}: the sweep's journal is damaged"), err
        assert len(err.splitlines()) == 1 and "--out" in err


# class 9: commands that start at once
@pytest.mark.parametrize("argv", [["--help"], ["classify", "train", "--help"],
                                  ["stereo", "predict", "--help"], ["stereo", "train", "--help"],
                                  ["basics", "run", "--help"], ["classify", "train", "--lr", "-1"],
                                  ["--version"]])
def test_help_and_argument_errors_never_import_torch(argv):
    code = ("import sys\nfrom cnnlab.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    assert fresh_python(code).splitlines()[-1] == "False"


def test_version(capsys):
    import cnnlab

    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"cnnlab {cnnlab.__version__}"


# arguments of library functions (not recipe settings): the flag and the function share the
# Rule object, and the function checks each call (engine.rules.checked)
def _classifier():
    import numpy as np

    return classify.load("mlp-mnist"), [np.zeros((28, 28), np.uint8)]


ARGUMENT_ROWS = [
    ("top_k 0", lambda: _classifier()[0].predict(_classifier()[1], top_k=0),
     "top_k must be an integer >= 1, got 0"),
    ("top_k negative", lambda: _classifier()[0].predict(_classifier()[1], top_k=-1),
     "top_k must be an integer >= 1, got -1"),
    ("top_k fractional", lambda: _classifier()[0].predict(_classifier()[1], top_k=2.5),
     "top_k must be an integer >= 1, got 2.5"),
]


ARGUMENT_ROWS += [
    ("load which for registered weights", lambda: classify.load("mlp-mnist", which="last"),
     "which: picks a run folder's checkpoint; name_or_path names registered weights or a "
     "file, so it changes nothing"),
    ("load which unknown", lambda: classify.load("mlp-mnist", which="bogus"),
     "which must be one of best, last, got 'bogus'"),
    ("evaluate count 0", lambda: stereo.evaluate("sgbm", "synthetic", count=0, log=None),
     "count must be an integer >= 1, got 0"),
    ("evaluate count negative", lambda: stereo.evaluate("sgbm", "synthetic", count=-1, log=None),
     "count must be an integer >= 1, got -1"),
    ("evaluate size zero", lambda: stereo.evaluate("sgbm", "synthetic", synthetic_size=(0, 64),
                                                   log=None),
     "synthetic_size must be 2 integers >= 1, got (0, 64)"),
    ("evaluate size a number", lambda: stereo.evaluate("sgbm", "synthetic", synthetic_size=64,
                                                       log=None),
     "synthetic_size must be 2 integers >= 1, got 64"),
    ("train crop of one side", lambda: stereo.train("psmnet", "synthetic", crop=(64,),
                                                    out="/nonexistent/x", progress=False),
     "crop must be 2 integers >= 16, got (64,)"),
    ("psmnet of two block counts", lambda: stereo.psmnet(blocks=(1, 2)),
     "blocks must be 4 integers >= 1, got (1, 2)"),
    ("classify milestones a number", lambda: classify.train("mlp", "mnist", schedule="step",
                                                            milestones=5, out="/nonexistent/x"),
     "milestones must be integers >= 1, got 5"),
    ("report border negative", lambda: stereo.report("sgbm", "synthetic", border=-1, log=None),
     "border must be an integer >= 0, got -1"),
    ("predict_folder confidence above 1",
     lambda: stereo.predict_folder("sgbm", "l.png", "r.png", filter=True, gt="g.pfm",
                                   min_confidence=1.5),
     "min_confidence must be a number in [0, 1], got 1.5"),
    ("load scale zero", lambda: stereo.load("psmnet-kitti2015", scale=0),
     "scale must be a number in (0, 1], got 0"),
    ("load max_memory nan", lambda: stereo.load("psmnet-kitti2015", max_memory=float("nan")),
     "max_memory must be a number > 0, got nan"),
]


@pytest.mark.parametrize("call, message", [r[1:] for r in ARGUMENT_ROWS],
                         ids=[r[0] for r in ARGUMENT_ROWS])
def test_library_arguments_keep_the_flags_rules(call, message):
    with pytest.raises(ConfigError) as caught:
        call()
    assert str(caught.value) == message


def test_a_flag_and_its_function_share_the_rule():
    from cnnlab.classify.predict import predict_images
    from cnnlab.stereo import api

    def flag(command, dest):
        parser = _subparser(build_parser(), command)
        return next(a for a in parser._actions if a.dest == dest).type

    assert flag(["classify", "predict"], "top_k") is predict_images.rules["top_k"]
    for dest in ("min_confidence", "min_depth", "gt_scale"):
        assert flag(["stereo", "predict"], dest) is api.predict_folder.rules[dest]
    assert flag(["stereo", "eval"], "count") is api.evaluate.rules["count"]
    assert flag(["stereo", "report"], "border") is api.report.rules["border"]


# class 3 for recipes: a setting the run would not use is refused, not ignored (flags, config
# files and Python alike: the engine's train_run asks the lab); a sweep refuses only what no
# trial could use
UNUSED_ROWS = [
    ("classify", {"momentum": 0.5}, "momentum 0.5: only `optimizer` sgd uses it"),
    ("classify", {"gamma": 0.5}, "gamma 0.5: only `schedule` step uses it"),
    ("classify", {"milestones": (2,), "schedule": "cosine"}, "milestones: only `schedule` step"),
    ("classify", {"warmup_epochs": 1.0}, "warmup_epochs 1: only `schedule` cosine warms up"),
    ("classify", {"schedule": "step", "gamma": 0.5},
     "gamma 0.5: the step schedule multiplies the lr by it at each of `milestones`, and none"),
    ("classify", {"amp": "fp16"}, "amp fp16: fp16 autocast runs on CUDA only"),
    ("stereo", {"dataset": "kitti2015", "synthetic_size": (64, 128)},
     "synthetic_size: only `dataset` synthetic draws scenes"),
    ("stereo", {"weights_root": "/tmp"}, "weights_root /tmp: only `init` given by a registered"),
]


def _worded(message: str, flags: bool) -> str:
    import re

    return re.sub(r"`([a-z_]+)`", lambda m: ("--" + m.group(1).replace("_", "-")) if flags
                  else m.group(1), message)


@pytest.mark.parametrize("lab, settings, message", UNUSED_ROWS,
                         ids=[f"{r[0]}-{'-'.join(r[1])}" for r in UNUSED_ROWS])
def test_a_setting_the_run_would_not_use_is_refused(lab, settings, message, tmp_path, capsys):
    settings = dict(settings)
    dataset = settings.pop("dataset", "mnist" if lab == "classify" else "synthetic")
    out = tmp_path / "run"
    train = classify.train if lab == "classify" else stereo.train
    with pytest.raises(ConfigError) as caught:
        train("mlp" if lab == "classify" else "psmnet", dataset, epochs=1, out=out,
              progress=False, data_root=str(tmp_path), **settings)
    assert str(caught.value).startswith(_worded(message, flags=False)), caught.value
    assert not out.exists()
    argv = [lab, "train", "--dataset", dataset, "--data-root", str(tmp_path), "--out", str(out)]
    for name, value in settings.items():
        text = ("x".join(map(str, value)) if name == "synthetic_size" else
                " ".join(map(str, value)) if isinstance(value, tuple) else str(value))
        argv += [_flag(name), *text.split()]
    err = _refused(argv, name, capsys, out)
    parameter = message.split(":")[0].split()[0]
    assert _flag(parameter) + _worded(message, flags=True)[len(parameter):] in err


def test_a_sweep_may_leave_a_setting_unused_in_some_trials_only(tmp_path, capsys):
    pytest.importorskip("optuna")
    from cnnlab.classify.settings import ClassifyConfig
    from cnnlab.classify.training import CLASSIFY
    from cnnlab.engine.config import RunConfig
    from cnnlab.engine.sweep import check_space, parse_param

    base = RunConfig("classify", ClassifyConfig(val_size=64), OptimConfig(momentum=0.5))
    check_space([parse_param("optimizer=choice:adam,sgd")], base, CLASSIFY)  # sgd trials use it
    with pytest.raises(ConfigError, match=r"momentum 0.5: only optimizer sgd uses it .*"
                                          r"\(in every trial of this sweep\)"):
        check_space([parse_param("lr=log:1e-3:1e-2")], base, CLASSIFY)
    with pytest.raises(ConfigError, match="param gamma=choice:0.1,0.5: gamma 0.5: only "
                                          "schedule step"):
        check_space([parse_param("gamma=choice:0.1,0.5")],
                    RunConfig("classify", ClassifyConfig(val_size=64), OptimConfig()), CLASSIFY)


def test_the_published_milestones_are_the_labs_default_for_the_step_schedule():
    from cnnlab.engine.config import RunConfig
    from cnnlab.stereo.training.lab import STEREO
    from cnnlab.stereo.training.settings import StereoConfig

    def resolved(dataset, **optim):
        run = RunConfig("stereo", StereoConfig(dataset=dataset, data_root="/x"),
                        OptimConfig(**optim))
        return STEREO.resolve(run, True, print)[0].optim.milestones

    assert resolved("kitti2015", schedule="step") == (200,)
    assert resolved("kitti2015", schedule="step", milestones=(5,)) == (5,)
    assert resolved("kitti2015", schedule="cosine") == ()
    assert resolved("sceneflow", schedule="step") == ()


def test_a_preset_sets_only_what_the_run_uses():
    from cnnlab.stereo.training.presets import PRESETS, preset_defaults

    assert preset_defaults("cpu-small", "synthetic") == PRESETS["cpu-small"]
    assert "synthetic_size" not in preset_defaults("cpu-small", "kitti2015")


@pytest.mark.parametrize("argv", [
    ["stereo", "eval", "--model", "sgbm", "--dataset", "synthetic", "--count", "1"],
    ["stereo", "report", "--model", "sgbm", "--dataset", "synthetic", "--count", "1"],
    ["stereo", "train"],
])
@pytest.mark.parametrize("option", [["--gt-scale", "4"], ["--gt-format", "pfm"]])
def test_how_a_folder_is_read_is_refused_off_the_folder_dataset(argv, option, tmp_path,
                                                                 capsys):
    out = tmp_path / "out"
    where = ["--json", str(out)] if argv[1] == "eval" else ["--out", str(out)]
    err = _refused([*argv, *option, *where], option[0], capsys, out)
    assert f"{option[0]}: for --dataset folder only" in err
    with pytest.raises(ConfigError, match=f"^{option[0][2:].replace('-', '_')}: for dataset "
                                          "folder only$"):
        stereo.evaluate("sgbm", "synthetic", count=1, log=None,
                        folder={option[0][2:].replace("-", "_"):
                                float(option[1]) if option[0] == "--gt-scale" else option[1]})


def test_a_config_file_saved_with_a_byte_order_mark_reads(tmp_path):
    from cnnlab.engine.config import read_config_file

    config = tmp_path / "config.json"
    config.write_text('{"lab": "classify"}', encoding="utf-8-sig")  # Windows Notepad
    assert read_config_file(config) == {"lab": "classify"}


def test_a_config_files_unused_settings_are_left_out_with_a_note(tmp_path, capsys):
    """--config reproduces a run and flags override it: a setting the file gave that the new
    run would not use (milestones once the schedule is cosine) is left out, said in a note;
    the same setting given as a flag is refused."""
    config = tmp_path / "old.json"
    config.write_text(json.dumps({"lab": "classify", "classify": {"dataset": "mnist"},
                                  "optim": {"schedule": "step", "milestones": [200],
                                            "momentum": 0.5, "optimizer": "sgd"}}))
    out = tmp_path / "run"
    argv = ["classify", "train", "--config", str(config), "--schedule", "cosine",
            "--optimizer", "adam", "--data-root", str(tmp_path), "--out", str(out)]
    assert main(argv) == 1  # the data is missing: the recipe itself was accepted
    err = capsys.readouterr().err
    assert f"note: --milestones 200 from --config {config} left out: only --schedule step" in err
    assert f"note: --momentum 0.5 from --config {config} left out: only --optimizer sgd" in err
    assert "missing" in err.splitlines()[-1]
    assert main([*argv, "--momentum", "0.7"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cnnlab: error: --momentum 0.7: only --optimizer sgd uses it (adam has its own); here "
        "it would change nothing")


def test_fine_tuning_refuses_layers_its_weights_do_not_have(tiny_checkpoint, tmp_path, capsys):
    """Architecture options that change the layers are refused against `init`'s card before
    the data is read (they failed in load_state_dict); max_disparity may differ."""
    from cnnlab.engine.config import RunConfig
    from cnnlab.stereo.training.lab import STEREO
    from cnnlab.stereo.training.settings import StereoConfig

    run = RunConfig("stereo", StereoConfig(init=str(tiny_checkpoint), blocks=(2, 2, 2, 2)),
                    OptimConfig())
    with pytest.raises(ConfigError, match=r"^blocks 2,2,2,2: the init weights were trained "
                                          r"with 1,1,1,1, and fine-tuning keeps their layers"):
        STEREO.resolve(run, False, lambda line: None)
    wider = RunConfig("stereo", StereoConfig(init=str(tiny_checkpoint), max_disparity=48),
                      OptimConfig())
    assert STEREO.resolve(wider, False, lambda line: None)[0].task.max_disparity == 48
