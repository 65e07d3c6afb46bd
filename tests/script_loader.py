"""Import a file of scripts/ or bench/ (not packages) as a module, for the tests of those files."""

import importlib.util
import pathlib

SCRIPTS = pathlib.Path(__file__).parent.parent / "scripts"
BENCH = pathlib.Path(__file__).parent.parent / "bench"


def load_script(name: str, directory: pathlib.Path = SCRIPTS):
    """scripts/<name>.py (or <directory>/<name>.py) as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(name, directory / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
