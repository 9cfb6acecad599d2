"""``python -m bench.workload --simulate`` fails loudly: a Verilator run with any problem exits 1
with one line naming the design and the problem, and records nothing."""

from bench import workload as bench


def test_a_simulated_design_beyond_the_tolerance_exits_1_and_records_nothing(monkeypatch, capsys):
    recorded = []
    monkeypatch.setattr(bench.results, "record", lambda *args, **kwargs: recorded.append(args))
    # The real quick design and a real Verilator run, held to a tolerance no number format meets.
    monkeypatch.setattr(bench, "TOLERANCE", 1e-12)
    status = bench.main(["--quick", "--orders", "1", "--modes", "forward", "--batch", "4"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 1
    assert not recorded
    assert err.startswith(f"error: the simulation failed: order 1 forward mode, DSP budget {bench.U280_DSP_BUDGET}: "
                          "output y0 is off by ")
    assert "over the tolerance 1e-12" in err and err.endswith("(nothing recorded)")


def test_every_problem_of_every_row_is_named():
    rows = [{"order": 1, "mode": "forward", "dsp_budget": 100, "simulation_problems": []},
            {"order": 2, "mode": "reverse", "dsp_budget": 100,
             "simulation_problems": ["10 cycles simulated, 9 predicted", "overflow: the sin core sin_3 saturated"]}]
    assert bench.simulation_failures(rows) == [
        "order 2 reverse mode, DSP budget 100: 10 cycles simulated, 9 predicted; overflow: the sin core sin_3 saturated"]
