"""Foundations: from-scratch convolution and pooling, and the autograd lessons."""
