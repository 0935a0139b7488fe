"""What the classification lab offers by name: plain values, no torch, so that the command line
lists them in ``--help`` and checks settings without loading it. The registries that build
them (``data.vision.DATASETS``, ``classify.models.MODELS``) hold the same names;
tests/test_rules.py compares them."""

from __future__ import annotations

from cnnlab.engine.rules import POSITIVE_INT, choice

DATASETS = ("mnist", "fashion-mnist", "cifar10")
# datasets whose labels survive a horizontal flip (not digits: a mirrored 3 is no digit)
HFLIP_DATASETS = ("fashion-mnist", "cifar10")
MODELS = ("mlp", "mlp_sigmoid", "simple_cnn", "simple_vgg", "lenet5", "lenet", "alexnet",
          "vgg11", "vgg16", "googlenet", "simple_resnet", "resnet18", "resnet50")
SWEEP_VAL_SIZE = 5000  # training images a sweep holds out to choose its settings on
TOP_K = POSITIVE_INT  # classes a prediction lists (at most the model's)
WHICH = choice("best", "last")  # a run folder's checkpoint
