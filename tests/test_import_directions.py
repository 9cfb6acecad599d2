"""The dependencies between the top-level packages point one way (docs: "How it works").

cores/ is a library of streaming cores that knows nothing of the compiler, the devices or the
boards; devices/ describes FPGA families from the cores' multipliers up; boards/ receive a design's
Verilog and facts, never the compiler's objects; within the compiler only ``inrarch/build.py``, the
board-build front end, reaches the boards. formal/ proves the others and none of them imports it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(path):
    """The top-level packages ``path`` imports, absolute or relative, anywhere in the file."""
    package = path.parent.relative_to(ROOT).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                found.add(base[0] if base else (node.module or "").split(".")[0])
            else:
                found.add(node.module.split(".")[0])
    return found


def sources(package):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package,forbidden", [("cores", {"inrarch", "boards", "devices", "formal"}),
                                               ("devices", {"inrarch", "boards", "formal"}),
                                               ("boards", {"inrarch", "formal"}), ("inrarch", {"formal"}),
                                               ("sim", {"formal"})])
def test_a_package_does_not_import_the_layers_above_it(package, forbidden):
    offenders = {str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden)
                 for path in sources(package) if imported_packages(path) & forbidden}
    assert not offenders


def test_only_the_build_front_end_imports_the_boards():
    importers = [str(path.relative_to(ROOT)) for path in sources("inrarch") if "boards" in imported_packages(path)]
    assert importers == ["inrarch/build.py"]


def test_the_check_sees_relative_and_absolute_imports():
    # Known imports: an absolute one (build.py -> boards) and relative ones resolved to their
    # package (matmul.py's "from .fixed import ..." is cores).
    assert "boards" in imported_packages(ROOT / "inrarch" / "build.py")
    assert {"cores", "numpy", "amaranth"} <= imported_packages(ROOT / "cores" / "matmul.py")
