"""Sub-commands of the `kbert` command line; see `kbert/cli.py`."""
