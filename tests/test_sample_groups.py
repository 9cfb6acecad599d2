"""PadToGroups and DropPadding in Amaranth's simulator: several runs back to back, each started with
its ``count``, under random valid gaps and back-pressure; every element moves exactly once."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from boards.sample_groups import DropPadding, PadToGroups
from cores.fixed import Q
from cores.testing import pack_lanes, unpack_lanes

FMT = Q(4, 8)
COUNT_WIDTH = 16


def _padded(count, group):
    return -(-count // group) * group


def _run(core, counts, inputs, expected, *, ahead, valid_prob, ready_prob, seed, max_cycles=20_000):
    """Start one run per count and feed it its ``inputs``; returns each run's outputs and the inputs taken.

    A run ends in the cycle ``busy`` falls. With ``ahead``, the driver offers a run's inputs before its
    start (the core must not take them early); without, it waits for the start, so the core sees idle
    inputs while it pads. The sink stops being ready once it has a run's ``expected`` number of outputs,
    like the kernel's ElementsToWords. After the last run, one more element is offered.
    """
    rng = np.random.default_rng(seed)
    width = FMT.width
    queue = [value for run in inputs for value in run] + [7]
    per_run = []

    async def testbench(ctx):
        sent, offered, cycle = 0, False, 0
        for index, count in enumerate(counts):
            ctx.set(core.start, 1)
            ctx.set(core.count, count)
            available = sum(len(run) for run in inputs[:index + 1 + ahead])
            received = []
            while True:
                if cycle >= max_cycles:
                    raise TimeoutError(f"run of count {count} not finished after {max_cycles} cycles")
                if not offered and sent < available and rng.random() < valid_prob:
                    offered = True
                    ctx.set(core.i.payload.as_value(), pack_lanes([queue[sent]], width))
                ctx.set(core.i.valid, offered)
                ctx.set(core.o.ready, len(received) < expected[index] and rng.random() < ready_prob)
                assert not (ctx.get(core.o.valid) and len(received) == expected[index]), \
                    f"run of count {count} offers more than {expected[index]} outputs"
                if ctx.get(core.o.valid) and ctx.get(core.o.ready):
                    received.append(unpack_lanes(ctx.get(core.o.payload.as_value()), width, 1)[0])
                if offered and ctx.get(core.i.ready):
                    sent += 1
                    offered = False
                await ctx.tick()
                cycle += 1
                if ctx.get(core.start):
                    ctx.set(core.start, 0)
                elif not ctx.get(core.busy):
                    break
            per_run.append(received)
        ctx.set(core.i.payload.as_value(), pack_lanes([queue[sent]], width))
        ctx.set(core.i.valid, 1)
        ctx.set(core.o.ready, 1)
        for _ in range(20):
            assert not ctx.get(core.i.ready) and not ctx.get(core.o.valid), "the core moves an element after its runs"
            await ctx.tick()
        per_run.append(sent)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return per_run[:-1], per_run[-1]


CASES = [(lanes, elements) for lanes in (1, 3) for elements in (1, 2)]
STALLS = [(1.0, 1.0, False), (0.6, 0.5, False), (0.6, 0.5, True)]


def _counts(elements):
    """Counts of whole samples: not multiples of the group, multiples, and 0."""
    return [elements * batch for batch in (4, 3, 0, 1, 6, 2)]


@pytest.mark.parametrize("valid_prob, ready_prob, ahead", STALLS)
@pytest.mark.parametrize("lanes, elements", CASES)
def test_pad_to_groups_completes_the_last_group_with_zeros(lanes, elements, valid_prob, ready_prob, ahead):
    group = lanes * elements
    counts = _counts(elements)
    rng = np.random.default_rng(group)
    inputs = [list(rng.integers(1, FMT.max_raw, size=count)) for count in counts]
    expected = [run + [0] * (_padded(len(run), group) - len(run)) for run in inputs]
    core = PadToGroups(FMT, elements_per_sample=elements, lanes=lanes, count_width=COUNT_WIDTH)
    outputs, sent = _run(core, counts, inputs, [len(run) for run in expected], ahead=ahead,
                         valid_prob=valid_prob, ready_prob=ready_prob, seed=group)
    assert outputs == expected
    assert sent == sum(counts)


@pytest.mark.parametrize("valid_prob, ready_prob, ahead", STALLS)
@pytest.mark.parametrize("lanes, elements", CASES)
def test_drop_padding_passes_the_counted_elements_and_takes_the_rest_of_the_group(lanes, elements, valid_prob,
                                                                                   ready_prob, ahead):
    group = lanes * elements
    counts = _counts(elements)
    rng = np.random.default_rng(group)
    inputs = [list(rng.integers(FMT.min_raw, FMT.max_raw, size=_padded(count, group))) for count in counts]
    core = DropPadding(FMT, elements_per_sample=elements, lanes=lanes, count_width=COUNT_WIDTH)
    outputs, sent = _run(core, counts, inputs, counts, ahead=ahead,
                         valid_prob=valid_prob, ready_prob=ready_prob, seed=group)
    assert outputs == [run[:count] for count, run in zip(counts, inputs)]
    assert sent == sum(len(run) for run in inputs)
