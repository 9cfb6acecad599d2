"""The FIFO depth rule of the latency solver, checked against amaranth's SyncFIFOBuffered."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from cores.fixed import Q
from cores.plumbing import StreamFIFO

FMT = Q(8, 8)


def _consumer_reads(writes, rng, max_wait):
    """A consumer that takes token k no earlier than it can (write + 2) and after a random wait."""
    reads, last = [], -10
    for w in writes:
        last = max(w + StreamFIFO.latency, last + 1) + int(rng.integers(0, max_wait + 1))
        reads.append(last)
    return np.array(reads)


def _replay(depth, writes, reads):
    """Drive a real FIFO: write on schedule, read on schedule; return writes that found it full."""
    fifo = StreamFIFO(FMT, depth)
    blocked = []

    async def bench(ctx):
        wi = ri = 0
        cycle = 0
        while ri < len(reads):
            offering = wi < len(writes) and writes[wi] <= cycle
            ctx.set(fifo.i.valid, int(offering))
            ctx.set(fifo.i.payload.as_value(), wi & 0xFF)
            reading = ri < len(reads) and reads[ri] <= cycle
            ctx.set(fifo.o.ready, int(reading))
            if offering:
                if ctx.get(fifo.i.ready):
                    if cycle != writes[wi]:
                        blocked.append(wi)
                    wi += 1
            if reading and ctx.get(fifo.o.valid):
                assert ctx.get(fifo.o.payload.as_value()) == ri & 0xFF
                ri += 1
            await ctx.tick()
            cycle += 1
            assert cycle < 10 * (reads[-1] + 10)

    sim = Simulator(fifo)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return blocked


@pytest.mark.parametrize("seed", range(6))
def test_solved_depth_is_enough_and_one_less_is_not(seed):
    rng = np.random.default_rng(seed)
    gaps = rng.integers(1, 3, size=40)
    writes = np.cumsum(gaps)
    reads = _consumer_reads(writes, rng, max_wait=int(rng.integers(0, 6)))
    depth = StreamFIFO.depth_for(writes, reads)
    assert _replay(max(3, depth), writes, reads) == []
    if depth > 3:
        assert _replay(depth - 1, writes, reads) != []


def test_a_full_rate_stream_needs_three_entries():
    writes = np.arange(20)
    assert StreamFIFO.depth_for(writes, writes + StreamFIFO.latency) == 3
