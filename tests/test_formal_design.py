"""A whole design's FIFO sizing, proved (:mod:`formal.design`): with the latency solver's depths,
no FIFO of the SIREN 2→4→4→1 at order 1 refuses a token, under any input timing.

CI bounds it to the cycles before the deepest FIFO fills; ``python -m bench.formal`` bounds it
past the first outputs and shows that it fails with one FIFO one entry shallower."""

from formal.design import fifo_sizing_proof, siren_design

DEPTH = 40


def test_formal_fifo_sizing_of_a_siren(tmp_path):
    design = siren_design()
    result = fifo_sizing_proof(design.netlist, design.schedule.depths, depth=DEPTH, directory=tmp_path)
    assert result.passed, result.summary()
