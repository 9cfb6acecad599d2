"""One build API: ``build(BuildConfig(...))`` for the command line, the sweep and the benches, and
``inrarch.compile`` with its ``CompileOptions``, each option checked in one place."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import inrarch
from inrarch import CompileOptions, OptionError
from inrarch.build import BuildConfig, BuildResult, build, error_line

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("inrarch", "cores", "boards", "devices", "sim")
# The command lines: the only modules of the packages that may read argv (boards/vitis_host.py is
# the host program a build writes beside its Vitis kernel).
CLI_ENTRY_POINTS = {"inrarch/build.py", "inrarch/sweep.py", "boards/vitis_host.py"}
TINY = dict(width=4, depth=1, batch=4, bits=12)


def _main_block(tree):
    """The ``if __name__ == "__main__":`` statements of a module."""
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            return node
    return None


def argv_uses(path):
    """``[(line, what)]`` of every place ``path`` reads or parses argv, or drives a command line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    main_block = _main_block(tree)
    inside_main = {id(node) for node in ast.walk(main_block)} if main_block else set()
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if "argparse" in names or "getopt" in names:
                uses.append((node.lineno, "imports argparse"))
            if isinstance(node, ast.ImportFrom) and "main" in names[:-1]:
                uses.append((node.lineno, f"imports main from {node.module}"))
        elif isinstance(node, ast.Attribute) and node.attr == "argv":
            uses.append((node.lineno, "reads sys.argv"))
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("parse_args", "parse_known_args"):
                uses.append((node.lineno, "parses arguments"))
            elif name == "main" and id(node) not in inside_main:
                uses.append((node.lineno, "calls a command line's main()"))
            elif name in ("redirect_stdout", "redirect_stderr"):
                uses.append((node.lineno, f"{name}: reads what a command line prints"))
        elif isinstance(node, (ast.List, ast.Tuple)):
            words = [item.value for item in node.elts if isinstance(item, ast.Constant)]
            if any(words[k:k + 2] == ["-m", "inrarch.build"] for k in range(len(words))):
                uses.append((node.lineno, "runs python -m inrarch.build"))
    return uses


def test_no_module_outside_the_command_lines_parses_argv():
    offenders = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            uses = argv_uses(path)
            if name in CLI_ENTRY_POINTS:
                assert _main_block(ast.parse(path.read_text())) is not None, f"{name} is not a command line"
                # A command line parses its own argv in main(); it drives no other one.
                uses = [use for use in uses if use[1] in ("calls a command line's main()", "runs python -m inrarch.build",
                                                          "imports main from inrarch.build")
                        or "redirect" in use[1]]
            if uses:
                offenders[name] = uses
    assert not offenders


def test_no_bench_drives_the_build_through_its_command_line():
    offenders = {str(path.relative_to(ROOT)): uses for path in sorted((ROOT / "bench").glob("*.py"))
                 if (uses := [use for use in argv_uses(path) if use[1] in ("runs python -m inrarch.build",
                                                                             "imports main from inrarch.build")
                              or "redirect" in use[1]])}
    assert not offenders


def test_the_check_finds_argv_parsing_and_command_line_calls(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("import argparse, sys, subprocess\nfrom inrarch.build import main\n"
                      "def f():\n    main(['--order', '2'])\n    return sys.argv\n"
                      "subprocess.run(['python', '-m', 'inrarch.build'])\n")
    found = {what for _, what in argv_uses(module)}
    assert found == {"imports argparse", "imports main from inrarch.build", "calls a command line's main()",
                     "reads sys.argv", "runs python -m inrarch.build"}


def test_build_returns_the_report_and_design_and_prints_nothing(tmp_path, capsys):
    result = build(BuildConfig(**TINY, out=tmp_path / "out"))
    assert isinstance(result, BuildResult) and result.out == tmp_path / "out" and result.problems == []
    assert capsys.readouterr() == ("", "")
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == json.loads(json.dumps(result.report))
    direct = inrarch.compile(inrarch.derivatives(inrarch.models.siren(2, 4, 1, 3, 30.0, 0), 1), torch.zeros(4, 2),
                             result.design.options)
    assert direct.verilog() == (tmp_path / "out" / "top.v").read_text()
    assert result.design.options.device.family == "UltraScale+" and result.report["dsp_budget"] == 7219


@pytest.mark.parametrize("options,option,problem", [
    ({"lanes": 0}, "lanes", "must be at least 1, not 0"),
    ({"dsp_budget": -1}, "dsp_budget", "must be at least 0, not -1"),
    ({"width": 1}, "width", "must be at least 2, not 1"),
    ({"tolerance": 2.0}, "tolerance", "must be between 0 and 1, not 2.0"),
    ({"clock_mhz": 0}, "clock_mhz", "must be positive, not 0"),
    ({"format": "q16"}, "format", "'q16' is not a number format"),
    ({"format": "q8.8", "width": 16}, "format", "and width both set the number formats"),
    ({"domain": (1.0, -1.0)}, "domain", "must be a range (low, high) with low < high"),
    ({"lanes": 1.5}, "lanes", "must be an integer, not 1.5"),
])
def test_every_compile_option_is_checked_once_naming_it(options, option, problem):
    with pytest.raises(OptionError) as refused:
        CompileOptions(**options)
    assert refused.value.option == option and str(refused.value).startswith(f"{option} {problem}")
    with pytest.raises(OptionError) as through_compile:  # compile's keywords are the same options
        inrarch.compile(lambda x: torch.sin(x), torch.zeros(2, 1), **options)
    assert str(through_compile.value) == str(refused.value)


def test_compile_keywords_replace_fields_of_the_options():
    options = CompileOptions(width=14, lanes=2)
    design = inrarch.compile(lambda x: torch.sin(3 * x), torch.zeros(4, 2), options, clock_mhz=150)
    assert design.options == dataclasses.replace(options, clock_mhz=150.0)
    assert design.report["lanes"] == 2 and design.report["clock_mhz"] == 150
    with pytest.raises(dataclasses.FrozenInstanceError):
        design.options.lanes = 3
    with pytest.raises(TypeError, match="unknown compile option lane; the options are format, width"):
        inrarch.compile(lambda x: torch.sin(x), torch.zeros(2, 1), lane=2)


def test_the_command_line_names_options_by_their_flags(tmp_path):
    with pytest.raises(OptionError) as refused:
        build(BuildConfig(**{**TINY, "bits": 1}, out=tmp_path / "out"))
    assert refused.value.option == "bits" and error_line(refused.value) == "--bits must be at least 2, not 1"
    assert error_line(OptionError("dsp_budget", "must be at least 0, not -1")) == "--dsp-budget must be at least 0, not -1"
    assert list(tmp_path.iterdir()) == []
