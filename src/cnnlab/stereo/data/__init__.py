"""Stereo data: image, disparity and calibration formats, the datasets (official layouts,
users' folders and lists, synthetic scenes) and KITTI's submission format.

Importing the room imports nothing: its modules are imported by name."""
