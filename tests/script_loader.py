"""Import a file of scripts/ or bench/ (not packages) as a module, for the tests of those files."""

import importlib.util
import pathlib
import sys

SCRIPTS = pathlib.Path(__file__).parent.parent / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))  # the scripts import their shared helpers (fetch_common) by name
BENCH = pathlib.Path(__file__).parent.parent / "bench"


def load_script(name: str, directory: pathlib.Path = SCRIPTS):
    """scripts/<name>.py (or <directory>/<name>.py) as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(name, directory / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module
