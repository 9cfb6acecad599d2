"""The stream-contract properties catch what they are for: each broken core below fails, by itself,
the property that its bug breaks, and the same core without the bug passes every property."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cores import Q, TimingContract
from cores.ports import lanes_signature
from formal.proof import prove
from formal.streams import PROPERTIES, StreamContractSpec, firing_cycles

FMT = Q(2, 2)
# bug: (the property group that catches it, the check that fails)
BUGS = {
    # the payload register loads while the output waits
    "overwrites_while_waiting": ("protocol", "o_holds_until_taken"),
    # valid drops after a cycle of waiting, the token untaken
    "withdraws": ("protocol", "o_holds_until_taken"),
    # takes a token while the output waits, and loses it
    "loses_when_stalled": ("progress", "o_drains"),
    # shows every token a second time
    "repeats": ("tokens", "o_no_extra_tokens"),
    # takes a token only every other cycle, one more than the contract's
    "slow": ("timing", "a_taken_on_time"),
    # takes `a` and `b` apart, when the contract reads them in one beat
    "takes_apart": ("reads", "channel0_run0_beat_together"),
    # the sum of a token with the one before it
    "adds_the_previous": ("payload", "o_payload1"),
}


class Stage(wiring.Component):
    """``o = a + b`` through one register, like the element-wise cores, with an optional bug."""

    def __init__(self, bug=None):
        self.bug = bug
        super().__init__({"a": In(lanes_signature(FMT)), "b": In(lanes_signature(FMT)),
                          "o": Out(lanes_signature(FMT))})
        self.contract = TimingContract.pipeline(("a", "b"), 1)

    def reference(self, a, b):
        return (a + b + 8) % 16 - 8

    def elaborate(self, platform):
        m = Module()
        bug = self.bug
        advance = ~self.o.valid | self.o.ready
        both = self.a.valid & self.b.valid
        odd = Signal()
        m.d.sync += odd.eq(~odd)
        take = advance | (bug == "loses_when_stalled")
        if bug == "slow":
            take = take & odd
        m.d.comb += [self.a.ready.eq(take & (self.b.valid | (bug == "takes_apart"))), self.b.ready.eq(take & self.a.valid)]
        fire = self.a.valid & self.a.ready & self.b.valid & self.b.ready & advance
        with m.If(fire | ((bug == "overwrites_while_waiting") & both)):
            m.d.sync += self.o.payload[0].eq(self.a.payload[0] + self.b.payload[0])
        if bug == "adds_the_previous":
            previous = Signal.like(self.a.payload[0])
            with m.If(fire):
                m.d.sync += [previous.eq(self.a.payload[0]),
                             self.o.payload[0].eq(self.a.payload[0] + self.b.payload[0] + previous)]
        shown = Signal()
        with m.If(advance):
            m.d.sync += self.o.valid.eq(fire)
        if bug == "withdraws":
            m.d.sync += shown.eq(self.o.valid & ~self.o.ready)
            with m.If(shown):
                m.d.sync += self.o.valid.eq(0)
        if bug == "repeats":
            again = Signal()
            m.d.sync += again.eq(self.o.valid & self.o.ready & ~again)
            with m.If(again):
                m.d.sync += self.o.valid.eq(1)
        return m


def prove_stage(bug, properties, directory):
    core = Stage(bug)
    depth = firing_cycles(core, 3) + 3
    return prove(StreamContractSpec(core, bound=depth, properties=properties, firings=3),
                 name=f"stage {bug}", depth=depth, directory=directory)


def test_formal_properties_pass_without_a_bug(tmp_path):
    result = prove_stage(None, PROPERTIES, tmp_path)
    assert result.passed, result.summary()


@pytest.mark.parametrize("bug", list(BUGS))
def test_formal_properties_catch_each_bug(bug, tmp_path):
    group, name = BUGS[bug]
    result = prove_stage(bug, (group,), tmp_path)
    assert result.status == "fail" and name in result.failed, result.summary()
