"""A compiled design as a Vitis RTL kernel (``ap_ctrl_hs``), with its ``kernel.xml`` and packaging script.

The design comes in as plain values: its streams (name, number format and elements per sample,
the input ``x`` first, then the outputs ``y0``, ``y1``, ...), its ports as
:func:`boards.harness.design_ports` lists them, and its Verilog (module ``top``).

The kernel reads the input samples from one buffer in device memory (HBM or DDR), streams them
through the dataflow design, and writes each output stream to its own buffer. Every buffer has its
own AXI4 master (``m_axi_x``, ``m_axi_y0``, ...), so each can sit in a different memory bank.
A design with runtime weights also gets a ``weights`` buffer, read through a
:data:`~cores.weights.WORD_BITS`-bit master ``m_axi_weights`` into the design's weight port at the
start of a run whose ``reload_weights`` register is set.
See docs/vitis.md for the register map, the data layout and a host-side example.
"""

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from amaranth.back import verilog as verilog_backend
from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

from cores.weights import WORD_BITS

from . import vitis_host
from .axi import (PAGE_BYTES, AxiBurstReader, AxiBurstWriter, AxiLiteRegisters, ElementsToWords, WordsToElements,
                  axi4_lite_signature, axi4_signature)
from .sample_groups import DropPadding, PadToGroups

__all__ = ["VitisKernel", "KernelArgument", "kernel_arguments", "kernel_layout", "kernel_verilog", "kernel_xml",
           "connectivity", "write_vitis_kernel", "DATA_WIDTH", "BURST_BEATS", "WEIGHT_BURST_BEATS", "WEIGHT_FIFO_WORDS"]

#: Bits per AXI4 data beat. The design moves at most one element per cycle per stream, so 64 bits
#: (two 32-bit elements per beat) is twice the bandwidth a stream can use, at a fraction of the area of 512.
DATA_WIDTH = 64

#: Longest AXI4 burst in beats (256 bytes at 64 bits).
BURST_BEATS = 32

#: Longest burst of the weights master: a whole 4 KiB page of :data:`~cores.weights.WORD_BITS`-bit words.
WEIGHT_BURST_BEATS = PAGE_BYTES * 8 // WORD_BITS

#: Words the weights master's FIFO holds: four bursts in flight, which hide a memory latency of up to three
#: bursts' worth of cycles (192 at 512 bits), so that the weights stream one word a cycle from HBM or DDR.
WEIGHT_FIFO_WORDS = 4 * WEIGHT_BURST_BEATS

#: Bits of the s_axi_control address (a 4 KiB register window).
CONTROL_ADDRESS_WIDTH = 12

#: Bits of element and word counters: a 32-bit batch times up to 2**16 elements per sample.
_COUNT_WIDTH = 48


@dataclass(frozen=True)
class KernelArgument:
    """One argument of the kernel as the host sees it (``kernel.xml``'s ``<arg>``)."""

    name: str
    offset: int
    size: int
    port: str
    c_type: str
    element_bytes: int = 0  # of a buffer; 0 for a scalar
    elements_per_sample: int = 0
    format: object = None  # the cores.fixed.Q of a buffer's elements
    words: int = 0  # of the weights buffer: its WORD_BITS-bit words, whatever the batch

    @property
    def is_buffer(self):
        return self.element_bytes > 0

    @property
    def data_width(self):
        """Bits per beat of the buffer's AXI4 master."""
        return WORD_BITS if self.words else DATA_WIDTH


def element_bytes(fmt):
    """Bytes per stored element: signed 32-bit integers when the format fits 32 bits, else 64-bit."""
    return 4 if fmt.width <= 32 else 8


def _c_type(nbytes):
    return "int*" if nbytes == 4 else "long long*"


def kernel_arguments(streams, weight_words=0):
    """The kernel's arguments in call order: one buffer per stream (``x``, ``y0``, ``y1``, ...), ``batch``,
    and for a design with runtime weights (``weight_words``, the words of its weight image) the
    ``weights`` buffer and ``reload_weights``.

    ``streams`` is ``[(name, format, elements per sample)]``, the input first. Buffer addresses
    are 64 bits at 0x10, 0x1C, 0x28, ... (12 bytes apart, as Vitis HLS lays them out); ``batch``
    (32 bits) follows, then ``weights`` (64 bits) and ``reload_weights`` (32 bits).
    """
    arguments = []
    offset = 0x10
    for name, fmt, numel in streams:
        nbytes = element_bytes(fmt)
        arguments.append(KernelArgument(name, offset, 8, f"m_axi_{name}", _c_type(nbytes), nbytes, numel, fmt))
        offset += 0xC
    arguments.append(KernelArgument("batch", offset, 4, "s_axi_control", "unsigned int"))
    if weight_words:
        offset += 0x8
        arguments.append(KernelArgument("weights", offset, 8, "m_axi_weights", "void*", WORD_BITS // 8,
                                        words=weight_words))
        arguments.append(KernelArgument("reload_weights", offset + 0xC, 4, "s_axi_control", "unsigned int"))
    return arguments


def kernel_layout(arguments, name="inrarch_kernel"):
    """The kernel's arguments as plain values, for a report: what ``host.py``
    (:mod:`boards.vitis_host`) needs to fill and read the buffers and registers (the ``weights``
    buffer of a design with runtime weights gives the bytes of its image, ``image_bytes``)."""
    rows = []
    for a in arguments:
        row = {"name": a.name, "offset": a.offset, "size": a.size}
        if a.words:
            row.update(direction="in", image_bytes=a.words * a.element_bytes)
        elif a.is_buffer:
            row.update(direction="in" if a.name == "x" else "out", element_bytes=a.element_bytes,
                       elements_per_sample=a.elements_per_sample, format=str(a.format))
        rows.append(row)
    return {"name": name, "arguments": rows, "status_offset": status_offset(arguments)}


def status_offset(arguments):
    """Offset of the read-only status register (after the last of :func:`kernel_arguments`): bit 0
    overflow, bits 8 and up the first core that overflowed."""
    return arguments[-1].offset + 0x8


def _flat_members(prefix, signature, flip):
    members = {}
    for name, member in signature.members.items():
        outward = (member.flow == Flow.Out) != flip
        members[f"{prefix}_{name}"] = Out(member.shape) if outward else In(member.shape)
    return members


def _connect_flat(m, top, prefix, interface):
    """Wire the flat top-level ports ``<prefix>_<member>`` to ``interface``'s members."""
    for name, member in interface.signature.members.items():
        inner, outer = getattr(interface, name), getattr(top, f"{prefix}_{name}")
        if member.flow == Flow.Out:
            m.d.comb += outer.eq(inner)
        else:
            m.d.comb += inner.eq(outer)


class VitisKernel(wiring.Component):
    """A compiled design as a Vitis RTL kernel with ``ap_ctrl_hs`` control.

    Parameters
    ----------
    arguments : list of KernelArgument
        :func:`kernel_arguments` of the design's streams; their formats decide the stored
        element sizes.
    ports : list of (str, Flow, int)
        The design's ports (:func:`boards.harness.design_ports`): the design is embedded as an
        instance of its module ``top``.
    lanes : int
        Samples the design computes at once. Above 1, each run's last group of ``lanes`` samples
        is completed with zero samples (:class:`boards.sample_groups.PadToGroups`) and their
        outputs are dropped (:class:`boards.sample_groups.DropPadding`), so any ``batch`` works.
    address_width, count_width, burst : int
        Bits of the AXI4 masters' addresses (64) and of the element and word counters
        (``_COUNT_WIDTH``), and the longest burst (:data:`BURST_BEATS`). Proofs
        (:mod:`formal.kernel`) build the kernel narrower; a kernel for Vitis keeps the defaults.

    A ``weights`` argument (a design with runtime weights) adds the master ``m_axi_weights``: when
    a run starts with bit 0 of ``reload_weights`` set, it reads the argument's ``words`` words of
    the weight image into the design's ``weights`` port, which takes no sample before the last
    word; with the bit clear the run keeps the weights loaded before.

    Ports
    -----
    ap_clk : In(1)
        The kernel clock (every flip-flop).
    ap_rst_n : In(1)
        Synchronous, active-low reset.
    interrupt : Out(1)
        Level interrupt (GIE and an enabled ISR bit).
    s_axi_control_* : AXI4-Lite subordinate, 32-bit data, 12-bit address
        The register map of :class:`boards.axi.AxiLiteRegisters` plus the arguments of
        :func:`kernel_arguments` and the status register at :func:`status_offset`.
    m_axi_x_*, m_axi_y0_*, ... : AXI4 masters, ``address_width``-bit address, :data:`DATA_WIDTH`-bit data
        ``m_axi_x`` only reads, the others only write; INCR bursts of up to :data:`BURST_BEATS`
        beats that never cross 4 KiB. Buffers must be :data:`DATA_WIDTH`/8-byte aligned.
    m_axi_weights_* : AXI4 master, ``address_width``-bit address, :data:`~cores.weights.WORD_BITS`-bit data
        Only with a ``weights`` argument; only reads, INCR bursts of up to
        :data:`WEIGHT_BURST_BEATS` beats with :data:`WEIGHT_FIFO_WORDS` words in flight. The
        weights buffer must be ``WORD_BITS``/8-byte aligned.

    Attributes
    ----------
    loading_weights : Signal
        High from a reloading run's start until the design took the image's last word: the state
        that the memory-safety proof (:mod:`formal.kernel`) relates the weights master to.
    """

    def __init__(self, arguments, ports, *, lanes=1, address_width=64, count_width=_COUNT_WIDTH, burst=BURST_BEATS):
        self.arguments = arguments
        self._ports = ports
        self._lanes = lanes
        self._address_width = address_width
        self._count_width = count_width
        self._burst = burst
        self.loading_weights = Signal()
        members = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
        members |= _flat_members("s_axi_control", axi4_lite_signature(CONTROL_ADDRESS_WIDTH), flip=True)
        for argument in self.arguments:
            if argument.is_buffer:
                members |= _flat_members(argument.port, axi4_signature(address_width, argument.data_width), flip=False)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]

        registers = m.submodules.control = AxiLiteRegisters(
            [(a.name, a.offset, 8 * a.size) for a in self.arguments],
            [("status", status_offset(self.arguments), 32)], address_width=CONTROL_ADDRESS_WIDTH)
        _connect_flat(m, self, "s_axi_control", registers.bus)
        m.d.comb += self.interrupt.eq(registers.interrupt)

        # The design stays a black box (module ``top``, converted once by the compiler): converting
        # a full-size design again would take as long as the whole build.
        ports = {name: Signal(width, name=f"dataflow_{name}")
                 for name, _, width in self._ports if name not in ("clk", "rst")}
        flows = {name: flow for name, flow, _ in self._ports}
        m.submodules.dataflow = Instance("top", i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"), **{
            ("i_" if flows[name] == Flow.In else "o_") + name: signal for name, signal in ports.items()})
        m.d.comb += registers.status.eq(Cat(ports["overflow"], Const(0, 7), ports["overflow_core"]))

        busy = []
        # While a run loads the weights no sample goes in: the design then sees the whole image
        # before the run's first sample.
        loading = Const(0)
        for argument in self.arguments:
            if argument.words:
                loading = self._weights(m, registers, ports, argument)
                busy.append(loading)
        for argument in self.arguments:
            if not argument.is_buffer or argument.words:
                continue
            elements = registers.batch * argument.elements_per_sample
            words = (elements * argument.element_bytes + DATA_WIDTH // 8 - 1) // (DATA_WIDTH // 8)
            fmt = argument.format
            payload, valid, ready = (ports[f"{argument.name}__{member}"] for member in ("payload", "valid", "ready"))
            # A 1-lane design takes any number of samples: no group logic, so its kernel stays as it was.
            groups = None
            if self._lanes > 1:
                groups = (PadToGroups if argument.name == "x" else DropPadding)(
                    fmt, elements_per_sample=argument.elements_per_sample, lanes=self._lanes,
                    count_width=self._count_width)
                m.submodules[f"{argument.name}_groups"] = groups
                m.d.comb += [groups.start.eq(registers.start), groups.count.eq(elements)]
                busy.append(groups.busy)
            sizes = {"data_width": DATA_WIDTH, "count_width": self._count_width}
            if argument.name == "x":
                memory = AxiBurstReader(burst=self._burst, address_width=self._address_width, **sizes)
                convert = WordsToElements(fmt, **sizes)
                wiring.connect(m, memory.o, convert.i)
                elements_out = convert.o
                if groups is not None:
                    wiring.connect(m, convert.o, groups.i)
                    elements_out = groups.o
                m.d.comb += [payload.eq(elements_out.payload), valid.eq(elements_out.valid & ~loading),
                             elements_out.ready.eq(ready & ~loading)]
            else:
                memory = AxiBurstWriter(burst=self._burst, address_width=self._address_width, **sizes)
                convert = ElementsToWords(fmt, **sizes)
                elements_in = convert.i
                if groups is not None:
                    wiring.connect(m, groups.o, convert.i)
                    elements_in = groups.i
                m.d.comb += [elements_in.payload.eq(payload), elements_in.valid.eq(valid),
                             ready.eq(elements_in.ready)]
                wiring.connect(m, convert.o, memory.i)
            m.submodules[f"{argument.name}_memory"] = memory
            m.submodules[f"{argument.name}_convert"] = convert
            m.d.comb += [
                memory.start.eq(registers.start), memory.address.eq(getattr(registers, argument.name)),
                memory.words.eq(words),
                convert.start.eq(registers.start), convert.count.eq(elements),
            ]
            _connect_flat(m, self, argument.port, memory.axi)
            busy += [memory.busy, convert.busy]

        # Counters load at the start edge, so from the next cycle on "nothing busy" means finished.
        m.d.comb += registers.done.eq(registers.running & ~Cat(*busy).any())
        return m

    def _weights(self, m, registers, ports, argument):
        """The weights master: a run whose ``reload_weights`` bit 0 is set first streams the image
        into the design's ``weights`` port. Returns the signal that is high until the design took
        the last word."""
        memory = m.submodules.weights_memory = AxiBurstReader(
            data_width=WORD_BITS, burst=WEIGHT_BURST_BEATS, count_width=self._count_width, depth=WEIGHT_FIFO_WORDS,
            address_width=self._address_width)
        reload = registers.start & registers.reload_weights[0]
        loading = self.loading_weights
        with m.If(reload):
            m.d.sync += loading.eq(1)
        with m.Elif(~memory.busy):
            m.d.sync += loading.eq(0)
        m.d.comb += [
            memory.start.eq(reload),
            memory.address.eq(registers.weights), memory.words.eq(argument.words),
            ports["weights__payload"].eq(memory.o.payload), ports["weights__valid"].eq(memory.o.valid),
            memory.o.ready.eq(ports["weights__ready"]),
        ]
        _connect_flat(m, self, argument.port, memory.axi)
        return loading


def kernel_xml(arguments, name):
    """The Vitis kernel description: ``ap_ctrl_hs``, one AXI4-Lite and one AXI4 master per buffer."""
    ports = [f'      <port name="s_axi_control" mode="slave" range="0x{1 << CONTROL_ADDRESS_WIDTH:X}" '
             f'dataWidth="32" portType="addressable" base="0x0"/>']
    ports += [f'      <port name={quoteattr(a.port)} mode="master" range="0xFFFFFFFFFFFFFFFF" '
              f'dataWidth="{a.data_width}" portType="addressable" base="0x0"/>' for a in arguments if a.is_buffer]
    args = [f'      <arg name={quoteattr(a.name)} addressQualifier="{1 if a.is_buffer else 0}" id="{index}" '
            f'port={quoteattr(a.port)} size="0x{a.size:X}" offset="0x{a.offset:X}" hostOffset="0x0" '
            f'hostSize="0x{a.size:X}" type={quoteattr(a.c_type)}/>' for index, a in enumerate(arguments)]
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<root versionMajor="1" versionMinor="6">',
        f'  <kernel name={quoteattr(name)} language="ip_c" vlnv="inrarch:kernel:{name}:1.0" attributes="" '
        'preferredWorkGroupSizeMultiple="0" workGroupSize="1" interrupt="true" hwControlProtocol="ap_ctrl_hs">',
        "    <ports>", *ports, "    </ports>",
        "    <args>", *args, "    </args>",
        "  </kernel>",
        "</root>",
        "",
    ])


def package_xo_tcl(arguments, name, clock_mhz):
    """A Vivado batch script that packages the Verilog as IP and then as ``<name>.xo``."""
    buffers = [a for a in arguments if a.is_buffer]
    lines = [
        f"# Package the {name} RTL kernel: vivado -mode batch -source package_xo.tcl",
        "# Writes ./<name>.xo next to this script; link it with: v++ -l -t hw --platform <platform> <name>.xo",
        "set here [file dirname [file normalize [info script]]]",
        f"set kernel {name}",
        "set ip_dir $here/ip",
        "set xo $here/$kernel.xo",
        "create_project -force -in_memory kernel_pack",
        "add_files -norecurse $here/$kernel.v",
        "set_property top $kernel [current_fileset]",
        "update_compile_order -fileset sources_1",
        "ipx::package_project -root_dir $ip_dir -vendor inrarch -library kernel -taxonomy /KernelIP "
        "-import_files -set_current true",
        "set core [ipx::current_core]",
        "set_property name $kernel $core",
        "foreach parameter [ipx::get_user_parameters -of $core] {",
        "  ipx::remove_user_parameter [get_property NAME $parameter] $core",
        "}",
        "ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core",
        "ipx::infer_bus_interfaces xilinx.com:signal:clock_rtl:1.0 $core",
        "ipx::infer_bus_interfaces xilinx.com:signal:reset_rtl:1.0 $core",
        "ipx::infer_bus_interfaces xilinx.com:signal:interrupt_rtl:1.0 $core",
        "ipx::associate_bus_interfaces -busif s_axi_control -clock ap_clk $core",
        *[f"ipx::associate_bus_interfaces -busif {a.port} -clock ap_clk $core" for a in buffers],
        "ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $core",
        "set clock [ipx::get_bus_interfaces ap_clk -of_objects $core]",
        f"set_property value {int(round(clock_mhz * 1e6))} [ipx::add_bus_parameter -quiet FREQ_HZ $clock]",
        "set_property value_resolve_type user [ipx::get_bus_parameters FREQ_HZ -of_objects $clock]",
        "set map [ipx::add_memory_map -quiet s_axi_control $core]",
        "set block [ipx::add_address_block -quiet reg0 $map]",
        f"set_property range 0x{1 << CONTROL_ADDRESS_WIDTH:X} $block",
        "foreach {register offset bits} {CTRL 0x00 32 GIER 0x04 32 IP_IER 0x08 32 IP_ISR 0x0C 32} {",
        "  set reg [ipx::add_register $register $block]",
        "  set_property address_offset $offset $reg",
        "  set_property size $bits $reg",
        "}",
    ]
    for a in arguments:
        lines += [
            f"set reg [ipx::add_register -quiet {a.name} $block]",
            f"set_property address_offset 0x{a.offset:03X} $reg",
            f"set_property size {8 * a.size} $reg",
        ]
        if a.is_buffer:
            lines += [f"set_property value {a.port} [ipx::add_register_parameter -quiet ASSOCIATED_BUSIF $reg]"]
    lines += [
        "set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $core]",
        "set_property sdx_kernel true $core",
        "set_property sdx_kernel_type rtl $core",
        "set_property supported_families { } $core",
        "set_property auto_family_support_level level_2 $core",
        "ipx::create_xgui_files $core",
        "ipx::update_checksums $core",
        "ipx::check_integrity -kernel $core",
        "ipx::save_core $core",
        "close_project",
        "file delete -force $xo",
        "package_xo -xo_path $xo -kernel_name $kernel -ip_directory $ip_dir "
        "-kernel_xml $here/kernel.xml",
        "",
    ]
    return "\n".join(lines)


def readme(arguments, name, platform=None):
    """What the directory holds, the register map and the buffer layout, as Markdown."""
    rows = []
    for a in arguments:
        if a.words:
            what = (f"address of `weights`: the weight image, {a.words} words of {WORD_BITS} bits "
                    f"({a.words * WORD_BITS // 8} bytes, `weights.bin`), {WORD_BITS // 8}-byte aligned")
        elif a.is_buffer:
            what = (f"address of `{a.name}`: `batch` × {a.elements_per_sample} × int{8 * a.element_bytes}, "
                    f"raw {a.format} values (real value = raw × 2^-{a.format.frac_bits})")
        elif a.name == "reload_weights":
            what = "bit 0: this run first loads the weight image (set it for the first run and after a new image)"
        else:
            what = "samples in this run (32 bits)"
        rows.append(f"| 0x{a.offset:02X} | {a.name} | {what} |")
    rows.append(f"| 0x{status_offset(arguments):02X} | status (read only) | bit 0: some value saturated since "
                "reset; bits 8 and up: 1 + index of the first core that did |")
    return "\n".join([
        f"# Vitis RTL kernel `{name}`",
        "",
        f"- `{name}.v`: the kernel (clock `ap_clk`, active-low reset `ap_rst_n`, `s_axi_control`, "
        + ", ".join(f"`{a.port}`" for a in arguments if a.is_buffer) + ", `interrupt`).",
        "- `kernel.xml`: the kernel description for `package_xo`.",
        f"- `package_xo.tcl`: `vivado -mode batch -source package_xo.tcl` writes `{name}.xo`.",
        "- `connectivity.cfg`: `v++ -l --config connectivity.cfg` puts each buffer in its own memory bank.",
        "- `host.py`: runs the kernel through pyxrt from the build's `report.json` alone: "
        "`python host.py inrarch.xclbin samples.npy --out outputs.npz`.",
        "",
        "On a machine with Vitis and the card's platform:",
        "",
        "```sh",
        "vivado -mode batch -source package_xo.tcl",
        f"v++ -l -t hw --platform {platform or '<platform>'} --config connectivity.cfg {name}.xo -o inrarch.xclbin",
        "python host.py inrarch.xclbin samples.npy --out outputs.npz",
        "```",
        "",
        f"Host call: `{name}(" + ", ".join(a.name for a in arguments) + ")`, `ap_ctrl_hs`.",
        "",
        "| offset | register | meaning |",
        "| --- | --- | --- |",
        "| 0x00 | control | bit 0 ap_start, 1 ap_done (clear on read), 2 ap_idle, 3 ap_ready, 7 auto_restart |",
        "| 0x04 | GIE | bit 0: global interrupt enable |",
        "| 0x08 | IER | bit 0: ap_done, bit 1: ap_ready |",
        "| 0x0C | ISR | bit 0: ap_done, bit 1: ap_ready (toggle on write) |",
        *rows,
        "",
        f"Memory ports are AXI4 with {DATA_WIDTH}-bit data and bursts of at most {BURST_BEATS} beats; "
        f"buffers must be {DATA_WIDTH // 8}-byte aligned (XRT buffers are). Each buffer holds the "
        "samples one after another, each sample's elements in row-major order, as little-endian "
        "signed integers. Inputs outside a format's range saturate. See docs/vitis.md.",
        *(["", f"`m_axi_weights` reads {WORD_BITS}-bit words in bursts of at most {WEIGHT_BURST_BEATS} beats. "
            "The image's word layout is in cores/weights.py; `Design.weight_image(model)` writes it. A run "
            "with `reload_weights` bit 0 set loads the image before it takes its first sample; a run with "
            "it clear computes with the weights loaded last."] if any(a.words for a in arguments) else []),
        "",
    ])


def connectivity(arguments, name, memory="HBM"):
    """A ``v++ --config`` file: one compute unit, each buffer in its own ``memory`` bank."""
    buffers = [a for a in arguments if a.is_buffer]
    return "\n".join(["[connectivity]", f"nk={name}:1:{name}_1",
                      *(f"sp={name}_1.{a.name}:{memory}[{index}]" for index, a in enumerate(buffers)), ""])


def write_vitis_kernel(directory, streams, ports, verilog, *, clock_mhz, name="inrarch_kernel", lanes=1,
                       weight_words=0, platform=None, memory="HBM"):
    """Write ``<name>.v``, ``kernel.xml``, ``package_xo.tcl``, ``connectivity.cfg``, ``host.py`` and
    ``README.md`` into ``directory``.

    Parameters
    ----------
    directory : path
        Created if missing.
    streams : list of (str, Q, int)
        The design's streams, name, format and elements per sample, the input ``x`` first (see
        :func:`kernel_arguments`).
    ports : list of (str, Flow, int)
        The design's ports (:func:`boards.harness.design_ports`).
    verilog : str
        The design's Verilog, module ``top``.
    clock_mhz : float
        Kernel clock for packaging.
    name : str
        Kernel and top-level module name.
    lanes : int
        Samples the design computes at once (see :class:`VitisKernel`).
    weight_words : int
        Words of the weight image of a design with runtime weights (0: constant weights), which
        adds the ``weights`` and ``reload_weights`` arguments (:func:`kernel_arguments`).
    platform : str, optional
        The Vitis platform the README's ``v++`` command names (a board's ``vitis_platform``).
    memory : str
        The card's memory the buffers go to in ``connectivity.cfg`` (``HBM`` or ``DDR``).

    Returns
    -------
    dict of str to pathlib.Path
        ``"verilog"``, ``"kernel_xml"``, ``"package_xo"``, ``"connectivity"``, ``"host"``, ``"readme"``.
        ``host.py`` (:mod:`boards.vitis_host`) reads the build's ``report.json``, whose
        ``"vitis_kernel"`` holds :func:`kernel_layout`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arguments = kernel_arguments(streams, weight_words)
    files = {
        "verilog": (directory / f"{name}.v", kernel_verilog(arguments, ports, verilog, name, lanes=lanes)),
        "kernel_xml": (directory / "kernel.xml", kernel_xml(arguments, name)),
        "package_xo": (directory / "package_xo.tcl", package_xo_tcl(arguments, name, clock_mhz)),
        "connectivity": (directory / "connectivity.cfg", connectivity(arguments, name, memory)),
        "host": (directory / "host.py", Path(vitis_host.__file__).read_text()),
        "readme": (directory / "README.md", readme(arguments, name, platform)),
    }
    for path, text in files.values():
        path.write_text(text)
    return {key: path for key, (path, _) in files.items()}


def kernel_verilog(arguments, ports, verilog, name="inrarch_kernel", *, lanes=1):
    """The kernel as Verilog text: the wrapper (top module ``name``), then the design's ``verilog`` (module ``top``)."""
    return verilog_backend.convert(VitisKernel(arguments, ports, lanes=lanes), name=name, emit_src=False) + "\n" + verilog
