"""Hierarchical Verilog in which every distinct part is converted once.

Amaranth converts a design flat: every instance of a part is elaborated, built into the netlist
and written out again, so a design of a thousand FIFOs and cores, or a matrix-vector core of 256
identical lanes, takes minutes. A part wrapped in :class:`Shared` becomes a Verilog module of
its own under :func:`convert`: the first use of a key converts the part to a module of that name,
every use is an instance of it, and yosys writes all modules in one run.

Anywhere else (Amaranth simulation, :func:`amaranth.back.verilog.convert`, a board platform) a
:class:`Shared` is the part itself, so those see the same flat design as without it.
"""

import dataclasses
import enum
import hashlib
import re

import numpy as np
from amaranth.back import rtlil, verilog
from amaranth.hdl import ClockSignal, Const, Elaboratable, Fragment, Instance, ResetSignal, Shape, ShapeCastable, Value
from amaranth.hdl import ValueCastable
# Private, like verilog._convert_rtlil_text below: the port directions amaranth's own converters
# pass when they convert a fragment with its ports.
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring

__all__ = ["Shared", "convert", "module_name"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Shared(Elaboratable):
    """``component`` as module ``key`` of its own when converted by :func:`convert`.

    Parameters
    ----------
    component : wiring.Component
        The part; its ports (as :func:`amaranth.back.verilog.convert` names them) are the module's.
    key : str
        The module's name, a Verilog identifier. Components that elaborate to the same hardware
        may share a key, others must not: :func:`module_name` makes one from everything the
        hardware depends on.
    """

    def __init__(self, component, key):
        if not _IDENTIFIER.fullmatch(key):
            raise ValueError(f"module key {key!r} is not a Verilog identifier")
        self.component = component
        self.key = key

    def elaborate(self, platform):
        if isinstance(platform, _Library):
            return platform.instance(self.component, self.key)
        return self.component


def module_name(prefix, *parameters):
    """``prefix`` followed by a digest of ``parameters``: a deterministic module key.

    ``prefix`` should make the name readable (the part and its main sizes); the digest covers
    everything else. Parameters may be numbers, strings, numpy arrays (by value), shapes and
    layouts, sequences, sets, dicts, objects such as :class:`~cores.fixed.Q` formats (by their
    class and attributes) and components (by their class, ports and other attributes). Signals,
    memories and other elaboratables an object holds are left out: they are hardware it built,
    some cores on elaboration, and a key must not change then. Functions cannot be keyed.
    """
    digest = hashlib.sha256()
    for parameter in parameters:
        _digest(parameter, digest, active=set())
    return f"{prefix}_{digest.hexdigest()[:10]}"


def _digest(value, digest, active):
    """Feed a canonical encoding of ``value`` to ``digest``: equal values, equal bytes, in any
    process (no ids, addresses, or set and dict orders)."""
    def feed(*tokens):
        digest.update(repr(tokens).encode())

    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, enum.Enum, np.generic)):
        feed(type(value).__qualname__, value)
    elif isinstance(value, np.ndarray):
        feed("ndarray", value.dtype.str, value.shape)
        if not value.dtype.hasobject:
            digest.update(np.ascontiguousarray(value).tobytes())
        elif all(type(item) is int for item in value.flat):
            feed(value.ravel().tolist())  # raw values as Python ints: one repr, not one feed per item
        else:
            _digest(value.tolist(), digest, active)
    elif isinstance(value, (Shape, ShapeCastable)):
        feed("shape", repr(value))  # amaranth's shapes and layouts print as their full value
    elif isinstance(value, (list, tuple)):
        feed(type(value).__qualname__, len(value))
        for item in value:
            _digest(item, digest, active)
    elif isinstance(value, (set, frozenset, dict)):
        items = sorted(value.items() if isinstance(value, dict) else value, key=lambda item: _encoded(item))
        feed(type(value).__qualname__, len(items))
        for item in items:
            _digest(item, digest, active)
    elif isinstance(value, (Value, ValueCastable)) or callable(value):
        # A signal's or a function's identity is not a value: key on what it stands for.
        raise TypeError(f"cannot key a module on {value!r}")
    elif hasattr(value, "__dict__"):
        if id(value) in active:
            raise TypeError(f"cannot key a module on {type(value).__qualname__}: it refers to itself")
        active.add(id(value))
        # The class's name, not the Python module defining it: moving a class between files
        # must not rename the hardware built from it.
        feed(type(value).__qualname__)
        if isinstance(value, wiring.Component):
            feed([(path, repr(member)) for path, member in value.signature.members.flatten() if member.is_port])
        for name, attribute in sorted(vars(value).items()):
            if _is_parameter(value, name, attribute):
                feed(name)
                _digest(attribute, digest, active)
        active.remove(id(value))
    else:
        raise TypeError(f"cannot key a module on a {type(value).__qualname__}: {value!r}")


def _encoded(value):
    digest = hashlib.sha256()
    _digest(value, digest, active=set())
    return digest.digest()


def _is_parameter(owner, name, attribute):
    """Whether an attribute is keyed: not amaranth's use tracking, a component's signature and
    ports (keyed by the signature's members), hardware the object built (see module_name), or the
    values a core with runtime weights was loaded with for its model (named in its ``loaded_values``,
    never part of its hardware)."""
    if name.startswith("_MustUse__") or isinstance(attribute, (Value, ValueCastable, Elaboratable)):
        return False
    if name in getattr(owner, "loaded_values", ()):
        return False
    return not (isinstance(owner, wiring.Component)
                and (name == "_Component__signature" or name in owner.signature.members))


class _Library:
    """The platform :func:`convert` elaborates with: the modules converted so far, by key."""

    def __init__(self):
        self.modules = {}

    def instance(self, component, key):
        ports = _ports(component)
        if key not in self.modules:
            self.modules[key] = _convert_module(component, key, ports, self)
        module = self.modules[key]
        if _widths(ports) != module.ports:
            raise ValueError(f"components of different ports share module {key}: "
                             f"{module.ports} and {_widths(ports)}")
        connections = {("i_" if direction is PortDirection.Input else "o_") + name: value
                       for name, (value, direction) in ports.items()}
        return Instance(key, **connections, **module.clocks)


@dataclasses.dataclass
class _Module:
    """A converted module: its ports, the instance arguments of its clocks and resets, its RTLIL."""

    ports: dict   # {name: (direction, width)}
    clocks: dict  # {"i_clk": ClockSignal("sync"), ...}
    rtlil: str


def _convert_module(component, key, ports, library):
    """``component`` as module ``key``, the shared parts inside it instances of ``library``'s."""
    fragment = Fragment.get(component, library)
    design = fragment.prepare(ports, hierarchy=(key,))
    text, _ = rtlil.convert_fragment(design, name=key, emit_src=False)
    # Only the design's own top module is marked top: yosys and simulators start from it.
    text = text.replace("attribute \\top 1\n", "", 1)
    # prepare() made the clock and reset of every domain the component uses ports of their own;
    # the instance connects them to the same domains of its parent.
    clocks = {}
    for domain in fragment.domains.values():
        for name, signal, _ in design.ports:
            if signal is domain.clk:
                clocks[f"i_{name}"] = ClockSignal(domain.name)
            elif signal is domain.rst:
                clocks[f"i_{name}"] = ResetSignal(domain.name)
    return _Module(_widths(ports), clocks, text)


def _ports(component):
    """``{name: (value, direction)}`` of the component's ports, named as amaranth's converters do; a
    member that is a constant (the ``ready`` of an always-ready stream) is no port."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const):
            continue
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return ports


def _widths(ports):
    return {name: (direction, len(value)) for name, (value, direction) in ports.items()}


def convert(top, name="top"):
    """Verilog text of the component ``top`` (module ``name``) and of every module it shares.

    The same design gives the same bytes. The top module's ports are named as by
    :func:`amaranth.back.verilog.convert`; each :class:`Shared` part is an instance of its module.
    """
    library = _Library()
    text = rtlil.convert(top, name=name, platform=library, emit_src=False)
    if name in library.modules:
        raise ValueError(f"the top module's name {name!r} is also the key of a shared module")
    # amaranth has no public call that runs yosys on RTLIL it did not build from one fragment;
    # its private one is what verilog.convert() itself runs, so the output is written the same way.
    return verilog._convert_rtlil_text(text + "".join(module.rtlil for module in library.modules.values()))
