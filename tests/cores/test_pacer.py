import numpy as np
import pytest

from cores.fixed import Q
from cores.pacer import Pacer
from cores.testing import check_contract, run_streams

FMT = Q(4, 12)


@pytest.mark.parametrize("tokens,period", [(1, 2), (2, 7), (3, 6)])
def test_pacer_keeps_contract_with_input_gaps(tokens, period):
    pacer = Pacer(FMT, tokens, period)
    values = list(np.random.default_rng(tokens).integers(FMT.min_raw, FMT.max_raw, 12 * tokens))
    run = run_streams(pacer, {"i": values}, {"o": len(values)}, valid_prob=0.5, seed=period)
    assert [t[0] for t in run.outputs["o"]] == values
    check_contract(pacer.contract, run)
    starts = np.asarray(run.accepts["i"])[::tokens]
    assert np.all(np.diff(starts) >= period)


def test_pacer_moves_every_item_once_under_stalls():
    pacer = Pacer(FMT, 3, 8)
    values = list(np.random.default_rng(5).integers(FMT.min_raw, FMT.max_raw, 60))
    run = run_streams(pacer, {"i": values}, {"o": 60}, valid_prob=0.6, ready_prob=0.4, seed=3)
    assert [t[0] for t in run.outputs["o"]] == values


def test_pacer_rejects_period_shorter_than_two_groups():
    with pytest.raises(ValueError, match="period"):
        Pacer(FMT, 4, 7)
