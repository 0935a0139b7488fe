"""Stereo weights: model cards, the official PSMNet releases (imported without unpickling)
and the registry that finds, verifies and loads them.

Importing the room imports nothing: its modules are imported by name."""
