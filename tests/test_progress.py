"""Progress bars: the format search counts its trials, the Verilator build its compiler runs, a run its words."""

import re

import torch
from amaranth.back import verilog

import inrarch
import sim
from cores import Q, StreamFIFO
from sim.verilator import toolchain


def final_state(text, description):
    """The last state drawn of the bar named ``description`` (tqdm redraws it after each ``\\r``)."""
    states = [part for part in re.split(r"[\r\n]", text) if part.startswith(f"{description}:")]
    assert states, f"no {description!r} bar in {text!r}"
    return states[-1]


def test_format_search_bar_ends_at_the_trials_it_ran(capsys):
    model = inrarch.models.siren(in_features=2, hidden=4, layers=1, out_features=1, w0=30.0, seed=0)
    design = inrarch.compile(inrarch.derivatives(model, order=1), example_input=torch.zeros(4, 2), progress=True)
    trials = design.report["format_search"]["trials"]
    shown = final_state(capsys.readouterr().err, "format search")
    assert "100%" in shown and f" {trials}/{trials} [" in shown


def test_no_bars_unless_asked(capsys):
    model = inrarch.models.siren(in_features=1, hidden=4, layers=1, out_features=1, w0=30.0, seed=0)
    inrarch.compile(inrarch.derivatives(model, order=1), example_input=torch.zeros(4, 1))
    assert capsys.readouterr().err == ""


def test_verilator_build_and_run_bars_count_compiler_runs_and_words(tmp_path, capsys):
    run = sim.run_verilog(verilog.convert(StreamFIFO(Q(4, 4), depth=4), name="top"), inputs={"i": list(range(100))},
                          outputs={"o": 100}, ready_prob=0.5, build_dir=tmp_path, progress=True)
    assert not run.cached
    err = capsys.readouterr().err
    log = next(tmp_path.glob("*/build.log")).read_text().splitlines()
    steps = 1 + sum(toolchain().cxx in line.split()[:2] for line in log)  # Verilation, then each compiler run
    assert steps > 3
    build = final_state(err, "Verilator build of top")
    assert "100%" in build and f" {steps}/{steps} [" in build
    words = final_state(err, "simulating top")
    assert "100%" in words and " 100/100 [" in words
