"""Whole groups of samples for a design that computes ``lanes`` samples at once.

Such a design takes and gives samples only in groups of ``lanes``. The Vitis kernel runs any
``batch``: :class:`PadToGroups` completes the input's last group with zero samples, and
:class:`DropPadding` takes the padded samples' outputs off each output stream, as
``Design.simulate`` does in software.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cores.fixed import Q
from cores.ports import lanes_signature

__all__ = ["PadToGroups", "DropPadding"]


class _GroupCounter(wiring.Component):
    """What both components share: ``count`` elements to pass, then the rest of the last group."""

    def __init__(self, fmt: Q, *, elements_per_sample, lanes, count_width):
        if elements_per_sample < 1 or lanes < 1:
            raise ValueError(f"a group needs at least one element per sample and one lane, "
                             f"not {elements_per_sample} and {lanes}")
        self._group_elements = elements_per_sample * lanes
        super().__init__({
            "start": In(1), "count": In(count_width), "busy": Out(1),
            "i": In(lanes_signature(fmt, 1)),
            "o": Out(lanes_signature(fmt, 1)),
        })

    def _count(self, m, moved):
        """Count the ``moved`` elements; returns the signal that is high while counted elements remain."""
        left = Signal.like(self.count)
        # Position of the next element in its group: a counter instead of ``count mod group``,
        # so no divider is needed.
        position = Signal(range(self._group_elements))
        passing = Signal()
        m.d.comb += [passing.eq(left != 0), self.busy.eq(passing | (position != 0))]
        with m.If(self.start):
            m.d.sync += [left.eq(self.count), position.eq(0)]
        with m.Elif(moved):
            with m.If(passing):
                m.d.sync += left.eq(left - 1)
            m.d.sync += position.eq(position + 1)
            with m.If(position == self._group_elements - 1):
                m.d.sync += position.eq(0)
        return passing


class PadToGroups(_GroupCounter):
    """Passes ``count`` elements, then zero elements up to a whole number of groups.

    Parameters
    ----------
    fmt : Q
        Number format of the elements.
    elements_per_sample : int
        Elements of one sample.
    lanes : int
        Samples per group: a group is ``elements_per_sample * lanes`` elements.
    count_width : int
        Bits of ``count``.

    Ports
    -----
    start : In(1)
        Pulse: expect ``count`` elements (sampled with ``start``).
    count : In(count_width)
        Elements of whole samples, ``batch * elements_per_sample``; 0 sends nothing.
    i : In(lanes_signature(fmt, 1))
        The ``count`` elements.
    o : Out(lanes_signature(fmt, 1))
        The ``count`` elements, then zeros up to the next multiple of the group.
    busy : Out(1)
        Elements remain to be sent.

    Behaviour
    ---------
    Input elements go through combinationally (``o.valid = i.valid``, ``i.ready = o.ready``),
    then a zero is valid in every cycle until the group is complete. No input is taken before
    ``start`` or after the ``count``-th.
    """

    def elaborate(self, platform):
        m = Module()
        passing = self._count(m, self.o.valid & self.o.ready)
        m.d.comb += [
            self.o.valid.eq(self.busy & (self.i.valid | ~passing)),
            self.i.ready.eq(passing & self.o.ready),
        ]
        with m.If(passing):
            m.d.comb += self.o.payload.eq(self.i.payload)
        return m


class DropPadding(_GroupCounter):
    """Passes ``count`` elements, then takes and drops elements up to a whole number of groups.

    Parameters
    ----------
    fmt, elements_per_sample, lanes, count_width
        As for :class:`PadToGroups`.

    Ports
    -----
    start : In(1)
        Pulse: expect ``count`` elements and the rest of their last group (sampled with ``start``).
    count : In(count_width)
        Elements of whole samples, ``batch * elements_per_sample``; 0 takes nothing.
    i : In(lanes_signature(fmt, 1))
        The ``count`` elements, then the padding up to the next multiple of the group.
    o : Out(lanes_signature(fmt, 1))
        The first ``count`` elements.
    busy : Out(1)
        Elements remain to be taken.

    Behaviour
    ---------
    The first ``count`` elements go through combinationally (``o.valid = i.valid``,
    ``i.ready = o.ready``); the padding is taken as soon as it is valid, whatever ``o.ready``.
    No input is taken before ``start`` or after the group is complete.
    """

    def elaborate(self, platform):
        m = Module()
        passing = self._count(m, self.i.valid & self.i.ready)
        m.d.comb += [
            self.o.valid.eq(passing & self.i.valid),
            self.o.payload.eq(self.i.payload),
            self.i.ready.eq(self.busy & (self.o.ready | ~passing)),
        ]
        return m
