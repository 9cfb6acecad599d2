"""Every core that ``cores`` exports, proved (:mod:`formal.cores`): its whole stream contract by
bounded model checking over two whole firings of every channel, and its output protocol by
k-induction, for every state. ``python -m bench.formal`` runs the same proofs deeper."""

import pytest

from formal.cores import contract_proof, cover_proof, induction_proof, instance_names, missing_instances

#: Lengths of k-induction tried for the output protocol, shortest first (every core's closes at 1).
INDUCTION_LENGTHS = (1, 2, 4)


def test_formal_instance_of_every_exported_core():
    assert not missing_instances(), f"add a small instance of {missing_instances()} to formal.cores.INSTANCES"


@pytest.mark.parametrize("name", instance_names())
def test_formal_stream_contract(name, tmp_path):
    result, spec = contract_proof(name, directory=tmp_path)
    assert result.passed, result.summary()
    assert not spec.unchecked, spec.unchecked


@pytest.mark.parametrize("name", instance_names())
def test_formal_output_protocol_by_induction(name, tmp_path):
    for length in INDUCTION_LENGTHS:
        result = induction_proof(name, depth=length, directory=tmp_path / str(length))
        if result.status != "unknown":
            break
    assert result.passed, result.summary()


def test_formal_bound_covers_two_whole_firings(tmp_path):
    """A trace within the contract proof's depth takes two firings of each channel of the
    two-channel MatVec and emits all their tokens: the bounded proof is not vacuous there
    (``bench.formal`` shows this for every core)."""
    result = cover_proof("MatVec", directory=tmp_path)
    assert result.passed, result.summary()
