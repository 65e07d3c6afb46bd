"""Import a file of experiments/ (not a package) as a module, for the tests of those scripts."""

import importlib.util
import pathlib

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent


def load_experiment(name: str):
    """experiments/<name>.py as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
