"""Shared by every lab: device/AMP, optimizers and schedules, checkpoints, run dirs, the loop."""
