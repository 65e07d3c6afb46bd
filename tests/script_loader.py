"""Import a file of scripts/ (not a package) as a module, for the tests of those scripts."""

import importlib.util
import pathlib
import sys

SCRIPTS = pathlib.Path(__file__).parent.parent / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))  # the scripts import their shared helpers (fetch_common) by name


def load_script(name: str):
    """scripts/<name>.py as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module
