"""Logic depth of every module of a design after yosys ``synth_xilinx``: a timing report without vendor tools.

Yosys maps the design to Xilinx primitives once, keeping its hierarchy (every distinct module is
synthesized once, as in ``cores.shared``), and writes the mapped netlist as JSON. For each module,
its hierarchy below is flattened here and the deepest register-to-register path is found by
counting the primitives on it:

* ``lut_levels``: LUTs in series (LUT1–LUT6, an inverter, and the read of a LUTRAM or SRL, which
  are LUTs);
* ``carry_chains``: carry chains the path enters (CARRY4/CARRY8 cells linked ``CO`` → ``CI`` are one
  chain, however long); ``carry_cells`` counts their cells (4 bits each for CARRY4);
* ``dsp_stages``: DSP48 slices the path crosses without a register between its input and its
  output (a multiply or an ALU stage that is combinational);
* ``wide_muxes``: MUXF7/MUXF8 stages, which widen a LUT into a 7- or 8-input function.

A path runs from a register (flip-flop, block RAM, UltraRAM, a DSP's output register, a LUTRAM's
or SRL's contents) to a register; a module's ports are neither, so paths that cross a module's
boundary count in the module that contains both of their ends (the whole design is ``top``). The
deepest path has the most ``levels``, ``lut_levels + carry_chains + dsp_stages``, then the most LUT
levels, chains and DSP stages. These counts are relative figures, not a timing analysis: they
ignore routing, fan-out and placement, and yosys maps logic differently from Vivado. See
docs/boards.md, "Logic depth", for the calibration against 300 MHz on UltraScale+.
"""

import dataclasses
import json
import re
from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from cores.shared import Shared, convert
from devices import ULTRASCALE_PLUS

from .synth import run_yosys

__all__ = ["Depth", "ModuleDepth", "TARGET", "synthesize_hierarchy", "module_depths", "timing_report",
           "component_depths"]

_FLIP_FLOPS = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}
_BLOCK_MEMORIES = {"RAMB18E1", "RAMB36E1", "RAMB18E2", "RAMB36E2", "URAM288", "URAM288_BASE"}
_LUTS = {"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV"}
_WIDE_MUXES = {"MUXF7", "MUXF8", "MUXF9"}
_CARRIES = {"CARRY4", "CARRY8"}
_DSPS = {"DSP48E1", "DSP48E2"}
_SHIFT_REGISTERS = {"SRL16E", "SRLC16E", "SRLC32E"}
_LUTRAM = re.compile(r"RAM\d+(M\d*|X1[SD])")
# The read address of a LUTRAM (A0.., A, ADDRA.., DPRA0..) and of an SRL (A0.., A) reaches its data
# output through the LUT's own multiplexer, as a LUT input does.
_READ_ADDRESS = re.compile(r"A\d?|ADDR[A-H]|DPRA\d?")
# The register that captures each DSP data input before the multiplier or ALU, when its parameter is
# non-zero; the others feed the multiplier (MREG) or the ALU (PREG) directly.
_DSP_INPUT_REGISTERS = {"A": "AREG", "ACIN": "AREG", "B": "BREG", "BCIN": "BREG", "C": "CREG", "D": "DREG",
                        "INMODE": "INMODEREG", "OPMODE": "OPMODEREG", "ALUMODE": "ALUMODEREG",
                        "CARRYIN": "CARRYINREG", "CARRYINSEL": "CARRYINSELREG"}
_DSP_MULTIPLIER_INPUTS = {"A", "ACIN", "B", "BCIN", "D", "INMODE"}
_DSP_ALU_INPUTS = {"PCIN", "CARRYCASCIN", "MULTSIGNIN"}


@dataclasses.dataclass(frozen=True)
class Depth:
    """The primitives on one path."""

    lut_levels: int = 0
    carry_chains: int = 0
    dsp_stages: int = 0
    carry_cells: int = 0
    wide_muxes: int = 0

    @property
    def levels(self):
        """LUT levels, carry chains and combinational DSP stages: each is at least one LUT's delay."""
        return self.lut_levels + self.carry_chains + self.dsp_stages

    @property
    def rank(self):
        """How deep the path is: its levels, then its LUT levels, carry chains, DSP stages, carry cells
        and wide muxes."""
        return (self.levels, self.lut_levels, self.carry_chains, self.dsp_stages, self.carry_cells, self.wide_muxes)


# The issue-13 target for 300 MHz on a -2 UltraScale+ part (docs/boards.md, "Logic depth"): at most
# TARGET.levels levels on any register-to-register path.
TARGET = Depth(lut_levels=5, carry_chains=1)

# While paths are searched, their depths are Depth.rank tuples: compared and summed as tuples.
_NONE = (0, 0, 0, 0, 0, 0)
_LUT = (1, 1, 0, 0, 0, 0)
_NEW_CHAIN = (1, 0, 1, 0, 1, 0)
_SAME_CHAIN = (0, 0, 0, 0, 1, 0)
_DSP = (1, 0, 0, 1, 0, 0)
_WIDE_MUX = (0, 0, 0, 0, 0, 1)


def _add(depth, step):
    return tuple(a + b for a, b in zip(depth, step))


def _depth(vector):
    _, luts, chains, dsps, carry_cells, muxes = vector
    return Depth(luts, chains, dsps, carry_cells, muxes)


def synthesize_hierarchy(verilog_path, work_dir, *, top="top", family=ULTRASCALE_PLUS.synth_family, yosys=None):
    """Run ``synth_xilinx -family FAMILY`` on ``verilog_path`` keeping the hierarchy; returns the
    mapped modules, ``{name: module}`` as yosys's ``write_json`` writes them.

    ``-noiopad -noclkbuf``: a module's ports are wires to its neighbours, not pins. The wires that
    Amaranth names after array elements (``a__payload[0]``) are hidden first: YoWASP yosys 0.70's
    ABC9 step stops on an assertion when their names remain.
    """
    work_dir = Path(work_dir)
    json_path = work_dir / "netlist.json"
    run_yosys(f"read_verilog {{verilog}}; rename -hide w:*]; synth_xilinx -family {family} -top {top} -noiopad "
              "-noclkbuf; select *; write_json -selected -noscopeinfo {netlist}",
              work_dir, files={"verilog": verilog_path, "netlist": json_path}, yosys=yosys)
    # Read once and removed: the netlist of a full-size design takes hundreds of megabytes.
    modules = json.loads(json_path.read_text())["modules"]
    json_path.unlink()
    return modules


class _Netlist:
    """A module with its hierarchy below flattened: primitive cells on nets numbered from 0."""

    def __init__(self, modules, top):
        self.modules = modules
        self.parent = []      # union-find over nets: an instance's port nets are its parent's nets
        self.names = {}       # net -> a readable name, the shallowest one found
        self.cells = []       # (type, parameters, {port: [net or None]}, port directions, instance path)
        self._flatten(top, {}, "")

    def _net(self):
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, net):
        while self.parent[net] != net:
            self.parent[net] = self.parent[self.parent[net]]
            net = self.parent[net]
        return net

    def _flatten(self, name, outer, prefix):
        """Add module ``name``'s cells; ``outer`` maps its port bits to the instantiating module's nets."""
        module = self.modules[name]
        local = {}
        for port, bits in ((port, info["bits"]) for port, info in module["ports"].items()):
            for index, bit in enumerate(bits):
                net = outer.get((port, index))
                if isinstance(bit, str) or net is None:
                    continue
                if bit in local:
                    self.parent[self.find(local[bit])] = self.find(net)
                else:
                    local[bit] = net

        def net_of(bit):
            if isinstance(bit, str):
                return None  # a constant drives no path
            if bit not in local:
                local[bit] = self._net()
            return local[bit]

        for wire, info in sorted(module["netnames"].items()):
            if info["hide_name"] or wire.startswith("\\$"):
                continue
            for index, bit in enumerate(info["bits"]):
                net = net_of(bit)
                if net is not None and net not in self.names:
                    self.names[net] = f"{prefix}{wire}" + (f"[{index}]" if len(info["bits"]) > 1 else "")
        for instance, cell in module["cells"].items():
            connections = {port: [net_of(bit) for bit in bits] for port, bits in cell["connections"].items()}
            if cell["type"] in self.modules:
                ports = {(port, index): net for port, nets in connections.items()
                         for index, net in enumerate(nets) if net is not None}
                self._flatten(cell["type"], ports, f"{prefix}{instance}.")
            else:
                self.cells.append((cell["type"], cell["parameters"], connections, cell["port_directions"],
                                   f"{prefix}{instance}"))

    def name(self, net):
        return self.names.get(net)


def _parameter(cell_parameters, name):
    value = cell_parameters.get(name, "0")
    return int(value, 2) if set(value) <= {"0", "1"} else value


def _arcs(kind, parameters, inputs, outputs, driver_kind):
    """The timing model of one primitive: ``(launches, captures, arcs)``.

    ``launches`` are ``(output net, depth)`` where a path starts, ``captures`` ``(input net, depth)``
    where one ends, ``arcs`` ``(input net, output net, depth)`` through the cell. Nets are given per
    port as lists; ``driver_kind(net)`` is the type of the primitive driving a net, if any.
    """
    every_output = [net for nets in outputs.values() for net in nets]
    every_input = [net for nets in inputs.values() for net in nets]
    if kind in _FLIP_FLOPS or kind in _BLOCK_MEMORIES:
        return [(net, _NONE) for net in every_output], [(net, _NONE) for net in every_input], []
    if kind in _LUTS or kind in _WIDE_MUXES:
        step = _LUT if kind in _LUTS else _WIDE_MUX
        return [], [], [(net, out, step) for net in every_input for out in every_output]
    if kind in _CARRIES:
        arcs = []
        for port, nets in inputs.items():
            for index, net in enumerate(nets):
                continues = port == "CI" and driver_kind(net) in _CARRIES
                step = _SAME_CHAIN if continues else _NEW_CHAIN
                # S[i] and DI[i] reach the sum and carry bits from i up; CI and CYINIT all of them.
                first = index if port in ("S", "DI") else 0
                arcs += [(net, out, step) for nets_out in outputs.values() for out in nets_out[first:]]
        return [], [], arcs
    if kind in _SHIFT_REGISTERS or _LUTRAM.fullmatch(kind):
        addresses = [net for port, nets in inputs.items() if _READ_ADDRESS.fullmatch(port) for net in nets]
        return ([(net, _NONE) for net in every_output], [(net, _NONE) for net in every_input],
                [(net, out, _LUT) for net in addresses for out in every_output])
    if kind in _DSPS:
        return _dsp_arcs(parameters, inputs, every_output)
    raise ValueError(f"no logic-depth model for the primitive {kind}")


def _dsp_arcs(parameters, inputs, every_output):
    """A DSP48 slice: a path ends at the first register after the input it enters by (the input's
    own, MREG for the multiplier, PREG), crossing the multiplier or ALU in between as one DSP stage;
    without PREG the outputs are combinational from the unregistered inputs and internal registers."""
    multiply = _parameter(parameters, "MREG") and _parameter(parameters, "USE_MULT") != "NONE"
    output_register = _parameter(parameters, "PREG")
    internal_registers = multiply or any(_parameter(parameters, register) for register in _DSP_INPUT_REGISTERS.values())
    launches = [(net, _NONE if output_register else _DSP) for net in every_output
                if output_register or internal_registers]
    captures, arcs = [], []
    for port, nets in inputs.items():
        for net in nets:
            if port in _DSP_INPUT_REGISTERS and _parameter(parameters, _DSP_INPUT_REGISTERS[port]):
                captures.append((net, _NONE))
            elif port in _DSP_INPUT_REGISTERS or port in _DSP_ALU_INPUTS:
                if (multiply and port in _DSP_MULTIPLIER_INPUTS) or output_register:
                    captures.append((net, _DSP))
                else:
                    arcs += [(net, out, _DSP) for out in every_output]
            else:
                captures.append((net, _NONE))  # clock enables, resets and the clock
    return launches, captures, arcs


@dataclasses.dataclass(frozen=True)
class ModuleDepth:
    """A module's deepest register-to-register path (its hierarchy below flattened) and its DSP slices
    that a path crosses without a register.

    Attributes
    ----------
    depth : Depth
        The deepest path's primitives; all zero when the module has no register-to-register path.
    start, end : str or None
        The registers the path starts and ends at (a net they drive, else the cell's name).
    cells : tuple of str
        The primitive types along the path, from its start to its end.
    unregistered_dsps : int
        DSP48 slices with a multiplier or ALU stage that no register precedes or follows.
    size : int
        Primitive cells in the module, its hierarchy below included.
    dsps : int
        DSP48 slices in the module.
    dsps_with_m_and_p : int
        Of those, the slices that multiply and keep both their M and P registers (``MREG`` and
        ``PREG`` set): the pipeline a DSP48E2 needs for its full clock.
    """

    depth: Depth
    start: str
    end: str
    cells: tuple
    unregistered_dsps: int
    size: int
    dsps: int = 0
    dsps_with_m_and_p: int = 0

    def as_dict(self):
        return {**dataclasses.asdict(self.depth), "levels": self.depth.levels, "from": self.start, "to": self.end,
                "path": _describe(self.cells), "unregistered_dsps": self.unregistered_dsps, "dsps": self.dsps,
                "dsps_with_m_and_p": self.dsps_with_m_and_p}


def _describe(cells):
    """``FDRE → LUT6 ×2 → CARRY4 ×6 → FDRE``: the primitive types along a path, repeats folded."""
    runs = []
    for cell in cells:
        if runs and runs[-1][0] == cell:
            runs[-1][1] += 1
        else:
            runs.append([cell, 1])
    return " → ".join(kind if count == 1 else f"{kind} ×{count}" for kind, count in runs) or None


def _module_depth(netlist):
    """The :class:`ModuleDepth` of a flattened module."""
    cells = []
    driver = {}
    for kind, parameters, connections, directions, instance in netlist.cells:
        ports = {"input": {}, "output": {}}
        for port, nets in connections.items():
            ports[directions[port]][port] = [netlist.find(net) for net in nets if net is not None]
        for nets in ports["output"].values():
            driver.update((net, kind) for net in nets)
        cells.append((kind, parameters, ports["input"], ports["output"], instance))
    # net -> (depth, the net before it on the deepest path or None at a launch, the cell that
    # drives it on that path, the launching register's name at a launch)
    arrival = {}
    captures = []
    fanout = {}
    fanin = {}
    unregistered_dsps = dsps = dsps_with_m_and_p = 0
    for kind, parameters, inputs, outputs, instance in cells:
        launches, cell_captures, arcs = _arcs(kind, parameters, inputs, outputs, driver.get)
        steps = [depth for _, depth in launches + cell_captures] + [step for _, _, step in arcs]
        unregistered_dsps += kind in _DSPS and _DSP in steps
        dsps += kind in _DSPS
        dsps_with_m_and_p += kind in _DSPS and bool(_parameter(parameters, "MREG") and _parameter(parameters, "PREG")
                                                    and _parameter(parameters, "USE_MULT") != "NONE")
        for net, depth in launches:
            if net not in arrival or depth > arrival[net][0]:
                arrival[net] = (depth, None, kind, netlist.name(net) or instance)
        captures += [(net, depth, kind, instance, outputs) for net, depth in cell_captures]
        for source, target, step in arcs:
            fanout.setdefault(source, []).append((target, step, kind))
            fanin[target] = fanin.get(target, 0) + 1
    ready = [net for net in fanout if net not in fanin]
    while ready:
        net = ready.pop()
        here = arrival.get(net)
        for target, step, kind in fanout[net]:
            if here is not None:
                depth = _add(here[0], step)
                if target not in arrival or depth > arrival[target][0]:
                    arrival[target] = (depth, net, kind, None)
            fanin[target] -= 1
            if fanin[target] == 0 and target in fanout:
                ready.append(target)
    if any(fanin.values()):
        raise ValueError("the netlist has a combinational loop")
    best = None
    for net, step, kind, instance, outputs in captures:
        if net in arrival and (best is None or _add(arrival[net][0], step) > best[0]):
            best = (_add(arrival[net][0], step), net, kind, instance, outputs)
    counts = {"dsps": dsps, "dsps_with_m_and_p": dsps_with_m_and_p}
    if best is None:
        return ModuleDepth(Depth(), None, None, (), unregistered_dsps, len(cells), **counts)
    depth, net, end_kind, instance, outputs = best
    end = next((netlist.name(out) for nets in outputs.values() for out in nets if netlist.name(out)), instance)
    kinds = [end_kind]
    while True:
        _, previous, kind, start = arrival[net]
        kinds.append(kind)
        if previous is None:
            return ModuleDepth(_depth(depth), start, end, tuple(reversed(kinds)), unregistered_dsps, len(cells),
                               **counts)
        net = previous


def module_depths(modules):
    """``{module name: ModuleDepth}`` of every module of a :func:`synthesize_hierarchy` netlist."""
    return {name: _module_depth(_Netlist(modules, name)) for name in sorted(modules)}


def timing_report(verilog_path, work_dir, *, top="top", family=ULTRASCALE_PLUS.synth_family, yosys=None):
    """``report["timing"]`` of a build: every module's deepest path, the worst module, and the modules
    over :data:`TARGET`.

    The worst module is the innermost one whose deepest path is the deepest of the design: a
    module's paths include those of the modules inside it.
    """
    depths = module_depths(synthesize_hierarchy(verilog_path, work_dir, top=top, family=family, yosys=yosys))
    worst = max(depths, key=lambda name: (depths[name].depth.rank, -depths[name].size))
    return {
        "tool": f"yosys synth_xilinx -family {family}, hierarchy kept; primitives counted by boards.timing",
        "target": {**dataclasses.asdict(TARGET), "levels": TARGET.levels},
        "modules": {name: depth.as_dict() for name, depth in depths.items()},
        "worst": {"module": worst, **depths[worst].as_dict()},
        "over_target": [name for name, depth in depths.items() if depth.depth.levels > TARGET.levels],
        "unregistered_dsps": depths[top].unregistered_dsps,
        "dsps": depths[top].dsps,
        "dsps_with_m_and_p": depths[top].dsps_with_m_and_p,
    }


class _Side(wiring.Component):
    """Components side by side, each a module of its own (``component_NAME``) with its ports exposed."""

    def __init__(self, components):
        self._components = components
        super().__init__({name: Out(component.signature) for name, component in components.items()})

    def elaborate(self, platform):
        m = Module()
        for name, component in self._components.items():
            m.submodules[name] = Shared(component, f"component_{name}")
            wiring.connect(m, wiring.flipped(getattr(self, name)), component)
        return m


def component_depths(components, work_dir, *, family=ULTRASCALE_PLUS.synth_family, yosys=None):
    """``{name: ModuleDepth}`` of Amaranth components ``{name: component}``, synthesized in one yosys run.

    Names are Verilog identifiers. Each component is a module of one design, so yosys reads its
    cell libraries once for all of them.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "top.v").write_text(convert(_Side(components), name="top"))
    modules = synthesize_hierarchy(work_dir / "top.v", work_dir, family=family, yosys=yosys)
    return {name: _module_depth(_Netlist(modules, f"component_{name}")) for name in components}
