"""Exercise checkers: a student's function or module from a notebook, checked step by step
against cnnlab's own, with a precise message for the first thing that is wrong.

This package sits above the labs it checks (like the CLI): it imports basics and stereo;
nothing in cnnlab imports it.
"""

from cnnlab.exercises.basics import check_corr2d, check_pool2d
from cnnlab.exercises.batch import FileResult, check_files
from cnnlab.exercises.psmnet import check_hourglass, check_spp
from cnnlab.exercises.resnet import check_residual_block
from cnnlab.exercises.result import CheckResult

__all__ = ["CheckResult", "FileResult", "check_corr2d", "check_files", "check_hourglass",
           "check_pool2d", "check_residual_block", "check_spp"]
