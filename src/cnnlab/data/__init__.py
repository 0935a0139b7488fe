"""Readers of the classification datasets' on-disk formats and data-root resolution."""
