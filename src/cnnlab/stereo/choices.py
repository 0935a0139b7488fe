"""What the stereo lab offers by name and by default, and PSMNet's disparity-range rule: plain
values and one check, no torch, so that the command line lists them in ``--help`` without
loading it. The modules that use them import them from here (and re-export them where they
always have), so each is stated once for the Python API and the command line alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cnnlab.engine.rules import COUNT, POSITIVE, POSITIVE_INT, Rule
from cnnlab.errors import ConfigError

# the datasets training, evaluation and reports take by name (stereo.data.datasets opens the
# official layouts, stereo.data.folder a user's own pairs, stereo.data.synthetic draws scenes)
DATASETS = ("synthetic", "sceneflow", "kitti2015", "kitti2012", "middlebury", "folder")
SPLITS = ("train", "val", "test", "all")
GT_FORMATS = ("auto", "pfm", "kitti", "npy", "png8")  # stereo.data.folder reads each
VARIANTS = ("stackhourglass", "basic")  # PSMNet's
# what runs the network: PyTorch, or an exported graph (stereo.inference.runtime)
RUNTIMES = ("torch", "onnxruntime", "openvino")
# inference precisions, resolved per device by engine.precision, which holds the same list (the
# engine imports no lab; tests/test_engine_precision.py compares them); int8 is PyTorch's on a
# CPU with VNNI (stereo.inference.int8), never what "auto" picks
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
REPORT_FORMATS = {"html": ".html", "markdown": ".md"}  # stereo.evaluation.report: format -> suffix

CONFIDENCE_RADIUS = 2.0  # px: the probability mass within this of the estimate (see README)
MIN_CONFIDENCE = 0.5  # the confidence below which ``filter`` leaves a pixel out
# ``fast``: the network on the pair downscaled by this factor, with the range scaled alike.
# Official KITTI 2015 weights, the 3 shared KITTI 2015 pairs, bf16 on a 2-core Zen 4 CPU
# (bench/stereo_speed.py): 1.15 s at 384x1248, EPE 0.716 px, D1 1.47% (full resolution:
# 3.36 s, 0.349 px, 0.32%; half resolution: 0.56 s, 1.002 px, 4.48%)
FAST_SCALE = 2 / 3

DEFAULT_MAX_DISPARITY = 192  # PSMNet's published range
SGBM_RANGE = 192  # SGBM's range when none is given
# PSMNet works at 1/16 of the pair's size and of its disparity range (features at a quarter,
# hourglasses halving twice): inputs are padded to multiples of it, ranges are multiples of it
PSMNET_STRIDE = 16
SYNTHETIC_SIZE = (256, 512)  # synthetic scenes' (height, width)
SYNTHETIC_COUNT = 8  # synthetic pairs evaluation and reports draw
REPORT_BORDER = 32  # px: the image-border region of a report
PREDICT_OUT = "runs/predict"  # where predictions go when no folder is given
# training: the crop (height, width), pairs per epoch and validation pairs of a recipe
CROP = (256, 512)
SAMPLES_PER_EPOCH = 400
VAL_COUNT = 8
# the optimisation settings a run takes unless told otherwise (command line and
# cnnlab.stereo.train alike): PSMNet's crops fit a batch of 4 on a CPU; the step schedule's
# milestones are the published ones for the dataset (training.lab.published_milestones)
TRAIN_DEFAULTS = {"epochs": 10, "batch_size": 4, "lr": 1e-3, "schedule": "step"}
# exported graphs: the sizes (height, width) one file accepts by default; below 256x512 the SPP
# pools are clipped to the map, a branch a graph cannot hold
EXPORT_MIN_SIZE = (256, 512)
EXPORT_MAX_SIZE = (1008, 2048)


# the values the stereo API's arguments take; the command line's flags take the same Rules
SCALE = Rule(float, 0, 1, low_open=True)  # the share of the pair's size the network sees
MAX_MEMORY = POSITIVE  # MB a pair may take before it is cut into tiles
MIN_DEPTH = POSITIVE  # metres
CONFIDENCE_LEVEL = Rule(float, 0, 1)  # ``min_confidence``
GT_SCALE = POSITIVE  # stored value = disparity x scale
FOCAL = POSITIVE  # px (with BASELINE in metres: a calibration from the command line)
BASELINE = POSITIVE
PAIR_COUNT = POSITIVE_INT  # synthetic pairs scored
SIZE = POSITIVE_INT.each_item(2)  # (height, width) in pixels
BORDER = COUNT  # px: a report's border region

# a disparity range: PSMNet's a positive multiple of 16; SGBM's any positive number of pixels
# (rounded up to 16 when it runs)
PSMNET_RANGE = Rule(int, PSMNET_STRIDE, multiple=PSMNET_STRIDE)
SGBM_RANGE_RULE = Rule(int, 1)
# PSMNet's architecture settings (its PSMNetConfig and a training run's StereoConfig alike)
ARCHITECTURE_RULES = {"variant": Rule(str, choices=VARIANTS), "max_disparity": PSMNET_RANGE,
                      "blocks": POSITIVE_INT.each_item(4),  # conv1_x .. conv4_x
                      "dilations": POSITIVE_INT.each_item(2),  # conv3_x, conv4_x
                      "spp_pools": POSITIVE_INT.each_item()}


def disparity_range_rule(sgbm: bool = False) -> Rule:
    """The rule of a disparity range: PSMNet's or SGBM's."""
    return SGBM_RANGE_RULE if sgbm else PSMNET_RANGE


def breaks_max_disparity(value: object, sgbm: bool = False) -> bool:
    """Whether ``value`` breaks the range rule."""
    return disparity_range_rule(sgbm).breaks(value)


def check_max_disparity(value: object, sgbm: bool = False) -> int | None:
    """``value`` as a disparity range in pixels (None: the default, kept), or a one-line error
    naming ``max_disparity``."""
    disparity_range_rule(sgbm).check(value, "max_disparity")
    return None if value is None else int(value)  # type: ignore[call-overload]


# the dataset "folder"'s own options (stereo.data.folder reads them)
FOLDER_OPTIONS = ("left", "right", "gt", "pair_list", "val_list")


def check_folder_options(datasets: Iterable[str], options: dict[str, Any]) -> None:
    """The folder dataset's options (``FOLDER_OPTIONS`` in ``options``, and how its ground
    truth is read, where not the default), refused with other datasets rather than
    ignored."""
    if "folder" in datasets:
        return
    given = [name for name in FOLDER_OPTIONS if options.get(name)]
    given += [name for name, default in (("gt_format", "auto"), ("gt_scale", 1.0))
              if options.get(name) not in (None, default)]  # how the folder's files are read
    if given:
        raise ConfigError(": for `dataset` folder only", parameter=given[0])
