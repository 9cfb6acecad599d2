"""A core's ``reference`` as tables that a proof can hold: each output element of the first firings
as a function of the few input elements it depends on.

A core's ``reference(*inputs)`` is bit-exact Python, not hardware, so a proof cannot call it. But
in the small instances that are proved, every output element depends on only a few input
elements (one for a FIFO, a fork or a gather, the two operands of an add, the ``n_in`` inputs of a
matrix row), of a few bits each. :class:`ReferenceTables` finds those inputs, its *support*, by
probing the reference (each input element over all of its values, on random backgrounds), and
tabulates the output over every value of the support. A proof then asserts that each output
element equals its table entry, indexed by the input elements the core actually took.

The probing cannot miss a dependency silently: the tables are checked against the reference on
random whole inputs, and a mismatch is an error. An output whose support exceeds ``max_bits``
bits is not tabulated; :attr:`ReferenceTables.unchecked` then says why.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Port", "Element", "ReferenceTables"]


@dataclass(frozen=True)
class Port:
    """A stream port of the core: ``tokens`` beats of ``lanes`` elements of ``width`` bits."""

    name: str
    width: int
    signed: bool
    lanes: int
    tokens: int

    @property
    def elements(self):
        return self.tokens * self.lanes

    def raw(self, bits):
        """Raw element values from their ``width`` bits."""
        bits = np.asarray(bits, dtype=np.int64)
        return bits - ((bits >> (self.width - 1)) << self.width) if self.signed else bits

    def values(self):
        """Every raw value of one element."""
        return self.raw(np.arange(1 << self.width))


@dataclass(frozen=True)
class Element:
    """Output element ``index`` of an output port as a function of input elements.

    ``support`` lists ``(port, element)`` pairs, the low bits of the table index first. ``table``
    is the output's bits for every index, as one integer of ``2**bits * width`` bits; ``copy``
    says the output is its one support element unchanged (no table needed).
    """

    index: int
    support: tuple
    bits: int
    table: int
    copy: bool


class ReferenceTables:
    """The output elements of ``core.reference`` over ``inputs`` and ``outputs`` (lists of :class:`Port`).

    Parameters
    ----------
    core
        Anything with ``reference(*inputs)``: one raw array per input port, in ``inputs``' order,
        leading axes a batch; one array per output port (a tuple for several).
    inputs, outputs : list of Port
        Every stream port, in the order of the reference's arguments and results, ``tokens``
        being the tokens of the firings tabulated.
    max_bits : int
        Largest support, in bits, that is tabulated (a table of ``2**max_bits`` entries).
    backgrounds : int
        Random backgrounds each input element is probed on.
    seed : int
    """

    def __init__(self, core, inputs, outputs, *, max_bits=12, backgrounds=16, seed=0):
        self.core = core
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.max_bits = max_bits
        self.rng = np.random.default_rng(seed)
        self.elements = {port.name: [] for port in self.outputs}
        self.unchecked = None
        supports = self._supports(backgrounds)
        widths = {port.name: port.width for port in self.inputs}
        largest = max((sum(widths[p] for p, _ in support) for support in supports.values()), default=0)
        if largest > max_bits:
            self.unchecked = (f"an output element depends on {largest} input bits, above the "
                              f"{max_bits}-bit tables a proof holds")
            return
        base = self._random_inputs(1)
        for support in sorted(set(supports.values())):
            owners = [key for key, value in supports.items() if value == support]
            columns = self._tabulate(base, support)
            for (port, index) in owners:
                out = self._output(port)
                column = columns[port][:, index] & ((1 << out.width) - 1)
                copy = len(support) == 1 and widths[support[0][0]] == out.width and np.array_equal(
                    column, np.arange(1 << out.width))
                table = 0 if copy else sum(int(v) << (k * out.width) for k, v in enumerate(column))
                bits = sum(widths[p] for p, _ in support)
                self.elements[port].append(Element(index, support, bits, table, copy))
        for port in self.elements:
            self.elements[port].sort(key=lambda element: element.index)
        self._validate()

    def _output(self, name):
        return next(port for port in self.outputs if port.name == name)

    def _random_inputs(self, rows):
        return [self.rng.integers(port.values().min(), port.values().max() + 1, (rows, port.elements), dtype=np.int64)
                for port in self.inputs]

    def _evaluate(self, inputs):
        result = self.core.reference(*inputs)
        result = result if isinstance(result, tuple) else (result,)
        if len(result) != len(self.outputs):
            raise ValueError(f"the reference gave {len(result)} outputs for ports {[p.name for p in self.outputs]}")
        evaluated = {}
        for port, values in zip(self.outputs, result):
            values = np.asarray(values).astype(np.int64)
            if values.shape[-1] < port.elements:
                raise ValueError(f"the reference gave {values.shape[-1]} elements of {port.name}, "
                                 f"not {port.elements}")
            evaluated[port.name] = values[..., :port.elements]
        return evaluated

    def _supports(self, backgrounds):
        """``{(output port, element): ((input port, element), ...)}``: what each output depends on."""
        depends = {(port.name, k): set() for port in self.outputs for k in range(port.elements)}
        for number, port in enumerate(self.inputs):
            values = port.values()
            for element in range(port.elements):
                batch = self._random_inputs(backgrounds)
                batch = [np.repeat(array, len(values), axis=0) for array in batch]
                batch[number][:, element] = np.tile(values, backgrounds)
                evaluated = self._evaluate(batch)
                for name, outputs in evaluated.items():
                    grouped = outputs.reshape(backgrounds, len(values), -1)
                    varies = (grouped != grouped[:, :1, :]).any(axis=(0, 1))
                    for k in np.flatnonzero(varies):
                        depends[name, int(k)].add((port.name, element))
        order = {port.name: n for n, port in enumerate(self.inputs)}
        return {key: tuple(sorted(value, key=lambda pair: (order[pair[0]], pair[1]))) for key, value in depends.items()}

    def _tabulate(self, base, support):
        """The outputs for every value of ``support``'s elements, the rest as in ``base``."""
        ports = {port.name: (n, port) for n, port in enumerate(self.inputs)}
        bits = sum(ports[name][1].width for name, _ in support)
        index = np.arange(1 << bits, dtype=np.int64)
        batch = [np.repeat(array, len(index), axis=0) for array in base]
        offset = 0
        for name, element in support:
            number, port = ports[name]
            batch[number][:, element] = port.raw((index >> offset) & ((1 << port.width) - 1))
            offset += port.width
        return self._evaluate(batch)

    def lookup(self, port, element, inputs):
        """The tabulated output element for raw ``inputs`` (one array per input port, one row)."""
        entry = self.elements[port][element]
        out = self._output(port)
        ports = {p.name: (n, p) for n, p in enumerate(self.inputs)}
        index, offset = 0, 0
        for name, k in entry.support:
            number, p = ports[name]
            index |= (int(inputs[number][k]) & ((1 << p.width) - 1)) << offset
            offset += p.width
        if entry.copy:
            return out.raw(index)
        return int(out.raw((entry.table >> (index * out.width)) & ((1 << out.width) - 1)))

    def _validate(self, rows=64):
        inputs = self._random_inputs(rows)
        evaluated = self._evaluate(inputs)
        for port in self.outputs:
            for element in self.elements[port.name]:
                for row in range(rows):
                    got = self.lookup(port.name, element.index, [array[row] for array in inputs])
                    if got != evaluated[port.name][row, element.index]:
                        raise RuntimeError(f"{type(self.core).__name__}: the tables of {port.name}[{element.index}] "
                                           "miss a dependency the probing did not find")
