"""Training PSMNet: the lab's parts for the engine (settings, data pipeline, loss, task),
presets, and the notebook face's ``train``.

Importing the room imports nothing: its modules are imported by name."""
