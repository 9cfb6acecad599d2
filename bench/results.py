"""``bench/results.json``: every published figure, with the command that measured it.

Each benchmark records its figures under a key of its own (``"workload"``, ``"fuzz"``, ...) with
the command line that measured them, its inputs, the commit and the date. The README and the
tables in ``docs/`` quote only this file, and ``tests/test_published_figures.py`` checks that
they still agree with it, so a figure that goes stale fails CI instead of misleading a reader.
"""

import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["RESULTS_PATH", "load", "record", "entry", "machine_load", "commit", "command_line"]

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS_PATH = REPOSITORY / "bench" / "results.json"


def load(path=RESULTS_PATH):
    """All recorded entries, keyed by benchmark; empty when nothing was recorded yet."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def entry(key, path=RESULTS_PATH):
    """The entry recorded under ``key``; KeyError names the command to run when it is missing."""
    entries = load(path)
    if key not in entries:
        raise KeyError(f"{path} has no {key!r} entry: run the benchmark that records it")
    return entries[key]


def commit():
    """The commit the working tree is at, ``+uncommitted`` after it when tracked files differ."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPOSITORY,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted" if dirty else "")


def record(key, results, *, inputs, command=None, path=RESULTS_PATH):
    """Store ``results`` under ``key`` with ``inputs``, the command line, the commit and the date.

    ``command`` defaults to the running process's own command line. Other keys are kept; the
    file is rewritten with sorted keys so that re-running one benchmark gives a small diff.
    """
    path = Path(path)
    entries = load(path)
    if command is None:
        command = command_line()
    entries[key] = {
        "command": command,
        "inputs": inputs,
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return entries[key]


def command_line():
    """The running process's command line, as a reader would type it (``python -m bench.x ...``)."""
    return "python " + shlex.join([*_script_name(), *sys.argv[1:]])


def _script_name():
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return ["-m", spec.name]
    script = Path(sys.argv[0]).resolve()
    try:
        return [str(script.relative_to(REPOSITORY))]
    except ValueError:
        return [str(script)]


def machine_load():
    """The CPU count and the 1-minute load average: other work on the machine lengthens wall times."""
    return {"cpu_count": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1)}
