"""Running a stereo method on pairs: precision, scale, tiles within a memory budget,
confidence, exported runtimes, SGBM, and what is written for each pair.

Importing the room imports nothing: its modules are imported by name."""
