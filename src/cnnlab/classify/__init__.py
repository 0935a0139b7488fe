"""Image classification lab: datasets as tensors, model zoo, train/eval/predict."""
