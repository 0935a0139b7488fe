"""Inference code never imports training code (the guide's layering rule)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINING = ("cnnlab.engine.loop", "cnnlab.engine.optim", "cnnlab.engine.lab",
            "cnnlab.classify.train", "cnnlab.classify.task", "cnnlab.classify.release",
            "cnnlab.stereo.train", "cnnlab.stereo.task", "cnnlab.stereo.losses",
            "cnnlab.stereo.pipeline")


def test_eval_and_predict_import_no_training_module():
    code = ("import sys\n"
            "import cnnlab.classify.evaluate, cnnlab.classify.predict, cnnlab.classify.weights\n"
            "import cnnlab.stereo.evaluate, cnnlab.stereo.predict, cnnlab.stereo.weights\n"
            f"print(sorted(m for m in sys.modules if m in {TRAINING!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={"PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert proc.stdout.strip() == "[]"
