"""What a classifier is trained on: the classification lab's settings, torch-free, so that the
command line takes its flags' rules from them without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlab.classify.choices import DATASETS, HFLIP_DATASETS, MODELS
from cnnlab.engine.rules import COUNT, FRACTION, POSITIVE_INT, check_settings, choice, setting
from cnnlab.errors import ConfigError


@dataclass
class ClassifyConfig:
    """Everything needed to rebuild the data pipeline and the model of a run; each value is
    checked against its rule when the settings are made (flags, config files, saved runs,
    sweeps and Python alike)."""

    dataset: str = setting("fashion-mnist", choice(*DATASETS))
    model: str = "simple_cnn"  # a registered name (checked below), or a Python class's name
    model_kwargs: dict = field(default_factory=dict)
    image_size: int | None = setting(None, POSITIVE_INT)  # None: the model's input size
    val_size: int = setting(0, COUNT)  # 0: validate on the official test set, as the course does
    translate: int = setting(0, COUNT)  # random translation in pixels (0 = off)
    hflip: bool = False  # random horizontal flips (only where label-preserving)
    label_smoothing: float = setting(0.0, FRACTION)
    data_root: str | None = None
    limit: int | None = setting(None, POSITIVE_INT)  # the first N training images (None: all)
    test_limit: int | None = setting(None, POSITIVE_INT)  # the first N test images (None: all)
    # a network defined in Python (a student's class): "module.QualName", with ``model`` its
    # class name; such a run is trained and resumed from Python, which passes the class
    module: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Each setting within its rule, and the combinations that make sense."""
        check_settings(self)
        if self.module is None and self.model not in MODELS:
            raise ConfigError(f"must be one of {', '.join(MODELS)} (or your own network), "
                              f"got {self.model!r}", parameter="model")
        if self.hflip and self.dataset not in HFLIP_DATASETS:
            raise ConfigError(f": horizontal flips change the meaning of {self.dataset} labels",
                              parameter="hflip")
