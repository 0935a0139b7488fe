"""Scoring disparity: metrics, the published protocols, error regions and the report of
where PSMNet fails.

Importing the room imports nothing: its modules are imported by name."""
