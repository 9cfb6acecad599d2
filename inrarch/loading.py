"""The user's code behind a build: ``path.py:attr`` loaded safely, told apart and described.

``--model path.py:attr`` and ``--function path.py:attr`` name something in the user's file.
:func:`load` runs the file as Python runs a script, with its own folder on ``sys.path`` (so that
``import siren_def`` beside it works from any directory), and tells apart by what it is:

- a **module**: a ``torch.nn.Module`` instance, the trained model;
- a **class**: a ``torch.nn.Module`` subclass, instantiated without arguments;
- a **factory**: a function of no argument, called, that returns the model (or the function);
- a **function**: a function of one tensor ``x``, such as a Laplacian or a PINN residual.

A class or a factory that makes a module and loads no state (no ``load_state_dict`` or
``torch.load`` while it runs) builds freshly initialized weights: :attr:`Loaded.fresh` says so, and
the build warns.
:func:`describe` names what was built: its layers in one line, its parameter count and a hash of
its parameters and buffers.
"""

import contextlib
import hashlib
import importlib.util
import inspect
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import OptionError
from .evaluation import first_line, float64_tensors, reference

__all__ = ["Loaded", "load", "describe", "parameter_hash", "input_features"]

#: Inputs per sample tried when a function's input width is not known otherwise.
_PROBED_WIDTHS = range(1, 17)


@dataclass(frozen=True)
class Loaded:
    """What ``path.py:attr`` named, as :func:`load` found it.

    Attributes
    ----------
    spec : str
        ``path.py:attr`` as given.
    kind : str
        ``"module"``, ``"class"``, ``"factory"`` or ``"function"``.
    value : callable
        The module, or the function of one tensor, to build.
    fresh : bool
        Built by a class or a factory that loaded no state: its weights are freshly initialized.
    """

    spec: str
    kind: str
    value: object
    fresh: bool = False

    @property
    def name(self):
        return self.spec.rpartition(":")[2]

    @property
    def path(self):
        return Path(self.spec.rpartition(":")[0])


@contextlib.contextmanager
def _watching_weights():
    """Inside the block, list in ``calls`` each ``torch.nn.Module`` made (``"init"``) and each state
    loaded (``"load_state_dict"``, ``"torch.load"``)."""
    calls = []
    originals = torch.nn.Module.__init__, torch.nn.Module.load_state_dict, torch.load

    def init(module, *args, **kwargs):
        calls.append("init")
        return originals[0](module, *args, **kwargs)

    def load_state_dict(module, *args, **kwargs):
        calls.append("load_state_dict")
        return originals[1](module, *args, **kwargs)

    def load(*args, **kwargs):
        calls.append("torch.load")
        return originals[2](*args, **kwargs)

    torch.nn.Module.__init__, torch.nn.Module.load_state_dict, torch.load = init, load_state_dict, load
    try:
        yield calls
    finally:
        torch.nn.Module.__init__, torch.nn.Module.load_state_dict, torch.load = originals


def _module_name(path):
    """A private module name for the user's file: its stem plus a digest of its path, so that two
    files of one name do not collide and no standard module is shadowed."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"inrarch_user_{stem}_{digest}"


def _run_file(path, option):
    folder = str(path.parent)
    # As ``python path.py`` would: modules beside the file import.
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = _module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickle look their module up there
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise OptionError(option, f"loading {path} failed: {type(error).__name__}: {first_line(error)}") from None
    return module


def _required_arguments(value):
    """The names of the positional arguments ``value`` needs, or None when its signature is unknown."""
    try:
        parameters = inspect.signature(value).parameters.values()
    except (TypeError, ValueError):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty]


def _takes_one_argument(value):
    """Whether ``value`` is a function of one argument (assumed so when its signature is unknown)."""
    needed = _required_arguments(value)
    return needed is None or len(needed) == 1


def _instantiate(spec, value, what, option):
    """Call the class or factory ``value``; returns the result and whether its weights are fresh: it
    made modules and loaded no state."""
    with _watching_weights() as calls:
        try:
            result = value()
        except Exception as error:
            raise OptionError(option, f"{spec}: calling the {what} failed: {type(error).__name__}: "
                                      f"{first_line(error)}") from None
    return result, "init" in calls and not {"load_state_dict", "torch.load"} & set(calls)


def load(spec, *, option="model"):
    """Load ``path.py:attr`` for ``--model`` or ``--function`` (``option``); returns a :class:`Loaded`.

    ``--model`` takes a module, a class, a factory returning a module, or a function of one tensor
    (a model written as a function); ``--function`` takes a function of one tensor, a module (built
    as it is) or a factory returning either. Anything else raises :class:`~inrarch.OptionError`
    naming the option, with what was found and what is taken.
    """
    path_text, _, attr = spec.rpartition(":")
    if not path_text or not attr:
        raise OptionError(option, f"{spec!r}: expected path.py:attribute")
    path = Path(path_text).resolve()
    if not path.is_file():
        raise OptionError(option, f"no such file {path_text!r}")
    module = _run_file(path, option)
    if not hasattr(module, attr):
        raise OptionError(option, f"{path_text} has no attribute {attr!r}")
    value = getattr(module, attr)
    takes = ("a torch.nn.Module, its class, a function of one tensor, or a function of no argument returning "
             "one of these")
    if isinstance(value, torch.nn.Module):
        return Loaded(spec, "module", value)
    if isinstance(value, type):
        if not issubclass(value, torch.nn.Module):
            raise OptionError(option, f"{spec} is the class {value.__name__}, not a torch.nn.Module; it takes {takes}")
        needed = _required_arguments(value)
        if needed:
            raise OptionError(option, f"{spec} is the class {value.__name__}, whose constructor needs "
                                      f"{', '.join(needed)}: name the trained instance, or a function of no argument "
                                      "that builds it and loads its state")
        model, fresh = _instantiate(spec, value, "class", option)
        return Loaded(spec, "class", model, fresh=fresh)
    if not callable(value):
        raise OptionError(option, f"{spec} is a {type(value).__name__}; it takes {takes}")
    if _takes_one_argument(value):
        return Loaded(spec, "function", value)
    needed = _required_arguments(value)
    if needed:
        raise OptionError(option, f"{spec} takes {len(needed)} arguments ({', '.join(needed)}); only functions of one "
                                  "tensor are built: concatenate the inputs into one (batch, in_features) tensor")
    result, fresh = _instantiate(spec, value, "factory", option)
    if isinstance(result, torch.nn.Module) or (callable(result) and not isinstance(result, type)
                                               and _takes_one_argument(result)):
        return Loaded(spec, "factory", result, fresh=fresh)
    raise OptionError(option, f"{spec} is a function of no argument that returned a {type(result).__name__}; "
                              f"it takes {takes}")


def _modules(fn):
    """The outermost ``torch.nn.Module`` objects ``fn`` uses (:func:`inrarch.evaluation.float64_tensors`
    finds them), without their own submodules."""
    with float64_tensors(fn) as found:
        pass
    inner = {id(sub) for module in found for sub in list(module.modules())[1:]}
    return [module for module in found if id(module) not in inner]


def _layer(module):
    """One module as ``Name(children...)``, ``Linear(a→b)`` or ``Name``."""
    if isinstance(module, torch.nn.Linear):
        return f"Linear({module.in_features}→{module.out_features})"
    children = [_layer(child) for child in module.children()]
    if isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)):
        return ", ".join(_runs(children))
    name = type(module).__name__
    return f"{name}({', '.join(_runs(children))})" if children else name


def _runs(items):
    """``items`` with each run of equal neighbours written once, ``item ×n``."""
    counted = ((item, sum(1 for _ in run)) for item, run in itertools.groupby(items))
    return [item if count == 1 else f"{item} ×{count}" for item, count in counted]


def parameter_hash(modules):
    """A sha256 of the parameters and buffers of ``modules`` (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for index, module in enumerate(modules):
        for name, tensor in module.state_dict().items():
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{index}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def describe(fn):
    """What ``fn`` computes with: ``{"layers", "parameters", "parameter_hash"}``.

    ``layers`` is one line, the modules ``fn`` uses with their layers (repeated layers once, ``×n``);
    ``parameters`` counts their parameters; ``parameter_hash`` is :func:`parameter_hash` of them.
    """
    modules = _modules(fn)
    return {
        "layers": "; ".join(_layer(module) for module in modules) or "no torch.nn.Module",
        "parameters": sum(p.numel() for module in modules for p in module.parameters()),
        "parameter_hash": parameter_hash(modules),
    }


def input_features(fn, *, option="model"):
    """How many inputs per sample ``fn`` takes: the ``in_features`` of the first ``nn.Linear`` it uses
    when ``fn`` runs on that many, else the first width from 1 to 16 on which it runs."""
    linears = [m for module in _modules(fn) for m in module.modules() if isinstance(m, torch.nn.Linear)]
    candidates = ([linears[0].in_features] if linears else []) + list(_PROBED_WIDTHS)
    failure = None
    for width in dict.fromkeys(candidates):
        try:
            reference(fn, torch.zeros(1, width, dtype=torch.float64))
            return width
        except Exception as error:  # the user's code: any exception means "not this width"
            failure = failure or f"{type(error).__name__}: {first_line(error)}"
    raise OptionError(option, f"could not find how many inputs it takes: it fails on every width from 1 to "
                              f"{_PROBED_WIDTHS[-1]} ({failure}); give it with {{0}}", "inputs")
