"""Formal proofs, with SymbiYosys and a PyPI SMT solver: the stream contract of every core, the
Vitis kernel's memory safety and a whole design's FIFO sizing.

- :mod:`formal.proof`: runs an Amaranth spec of ``Assert``/``Assume`` statements through ``sby``;
- :mod:`formal.streams`: the stream-contract properties, written once for any core with
  :mod:`amaranth.lib.stream` ports;
- :mod:`formal.reference`: a core's ``reference`` as tables a proof can hold;
- :mod:`formal.cores`: the proofs of every core that :mod:`cores` exports.
"""
