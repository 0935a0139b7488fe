"""stereo/runtime.py: what an exported model's metadata and precision must be (the runs
themselves are in test_stereo_export.py, after an export)."""

import json

import pytest
import torch

from cnnlab.errors import ConfigError, DataError
from cnnlab.stereo.inference.runtime import card_and_sizes, runtime_precision
from cnnlab.stereo.models import PSMNetConfig
from cnnlab.stereo.weights.card import psmnet_card


def test_metadata_gives_the_card_and_the_sizes():
    card = psmnet_card(PSMNetConfig(max_disparity=32)).to_dict()
    meta = {"cnnlab_card": json.dumps(card),
            "cnnlab_sizes": json.dumps({"min": [256, 512], "max": [512, 1024]})}
    read, low, high = card_and_sizes("m.onnx", meta)
    assert read.kwargs["max_disparity"] == 32 and low == (256, 512) and high == (512, 1024)


@pytest.mark.parametrize("meta, fragment", [
    ({}, "m.onnx: an ONNX file without cnnlab's model card"),
    ({"cnnlab_card": "{", "cnnlab_sizes": "{}"}, "m.onnx: cnnlab's metadata in this ONNX file "
                                                 "is damaged"),
    ({"cnnlab_card": json.dumps(psmnet_card(PSMNetConfig()).to_dict()),
      "cnnlab_sizes": json.dumps({"min": [256, 512]})}, "is damaged"),
])
def test_missing_or_damaged_metadata_is_one_line(meta, fragment):
    with pytest.raises(DataError, match=fragment):
        card_and_sizes("m.onnx", meta)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_exported_graphs_run_in_fp32_only(runtime):
    cpu = torch.device("cpu")
    assert runtime_precision("auto", runtime, cpu) == "fp32"
    assert runtime_precision("fp32", runtime, cpu) == "fp32"
    with pytest.raises(ConfigError, match=f"precision bf16: runtime {runtime} runs the "
                                          "exported graph in fp32 only"):
        runtime_precision("bf16", runtime, cpu)
