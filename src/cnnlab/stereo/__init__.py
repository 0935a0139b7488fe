"""Stereo matching lab: PSMNet, stereo data formats and datasets, metrics, train/eval/predict."""
