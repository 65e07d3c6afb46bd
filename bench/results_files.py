"""Where the benchmarks keep raw results: bench/results/<date>-<machine>[-<what>].json.

<date> is the day of the run (YYYY-MM-DD), <machine> a short lower-case name of the CPU
("epyc" for an AMD EPYC, "xeon" for an Intel Xeon, else the first word of the model name that
is not a vendor or a trademark sign), <what> names a partial or special run ("bf16", "int8",
"load"). A default path that already exists gets the time of day (-HHMM) added, so a second run
on the same day does not overwrite the first.
"""

from __future__ import annotations

import os
import platform
import re
import time

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

_NOT_A_NAME = {"amd", "intel", "r", "tm", "cpu", "processor", "genuine", "authentic", "model",
               "name", "with", "radeon", "graphics"}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown"


def machine_name(model: str | None = None) -> str:
    """'AMD EPYC 9454 48-Core Processor' -> 'epyc'; 'Intel(R) Xeon(R) Processor' -> 'xeon'."""
    model = cpu_model() if model is None else re.sub(r"^\s*\d+\s*x\s+", "", model)  # "2 x ..."
    words = [w for w in re.findall(r"[a-z0-9]+", model.lower()) if w not in _NOT_A_NAME]
    return next((w for w in words if not w.isdigit()), None) or platform.machine().lower() or "cpu"


def results_json(what: str | None = None, *, model: str | None = None,
                 when: time.struct_time | None = None, directory: str = RESULTS_DIR) -> str:
    """The default raw-results path of a run made now on this machine (see the module doc)."""
    when = time.localtime() if when is None else when
    stem = f"{time.strftime('%Y-%m-%d', when)}-{machine_name(model)}" + (f"-{what}" if what else "")
    path = os.path.join(directory, stem + ".json")
    if os.path.exists(path):
        path = os.path.join(directory, f"{stem}-{time.strftime('%H%M', when)}.json")
    return path
