"""Where an op came from: the user's source line, ``file:line: code``, for capture's errors."""

import contextlib
import os
import traceback

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["source_line", "raising_line", "occurrences"]

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_INRARCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# inrarch's model zoo is the one part of inrarch that plays the user's part.
_MODEL_ZOO = os.path.join(_INRARCH_DIR, "models.py")


def _is_user_frame(frame):
    """Whether ``frame`` is in neither torch nor inrarch's machinery (capture, derivatives, ...)."""
    if frame.filename.startswith(_TORCH_DIR):
        return False
    return not frame.filename.startswith(_INRARCH_DIR) or frame.filename == _MODEL_ZOO


class _OpLocator(TorchDispatchMode):
    """Runs the function eagerly and keeps, at every call of ``target``, the Python stack and the
    ``torch.nn.Module`` calls in progress (outermost first)."""

    def __init__(self, target):
        super().__init__()
        self.target, self.stacks, self.module_stacks = target, [], []
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is self.target:
            self.stacks.append(traceback.extract_stack())
            self.module_stacks.append(list(self.calls))
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def following_modules(self):
        """Keep :attr:`calls`, the modules being called, up to date inside the block."""
        def enter(module, args):
            self.calls.append(module)

        def leave(module, args, output):
            if self.calls and self.calls[-1] is module:
                self.calls.pop()

        handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave, always_call=True)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _describe_frame(frame):
    path = os.path.relpath(frame.filename)
    path = frame.filename if path.startswith("..") else path
    return f"{path}:{frame.lineno}: {(frame.line or '').strip()}"


def _torch_module(module):
    return type(module).__module__.startswith("torch.nn")


def _module_context(modules):
    """``nn.LayerNorm 'norm'``: the innermost torch.nn module being called, by its name in the outermost."""
    inner = modules[-1]
    names = {id(sub): name for name, sub in modules[0].named_modules()}
    name = names.get(id(inner), "")
    return f"nn.{type(inner).__name__}" + (f" {name!r}" if name else "")


def source_line(fn, sample, target, occurrence):
    """Where the ``occurrence``-th ``target`` op comes from, in the user's terms: ``file:line: code``
    of the user's line that ran it, and the torch.nn module it ran in when one did
    (``file:line: code, in nn.LayerNorm 'norm'``); a torch.nn module that no line of the user's
    calls (a layer of an ``nn.Sequential``) is named by its place in the model. Never a line of torch.

    make_fx only records stack traces inside ``forward`` methods, and recording them costs a
    third of the tracing time, so the place is found only when an error needs it: the function
    runs once more, eagerly, under a dispatch mode that records the Python stack at that op.
    """
    locator = _OpLocator(target)
    try:
        with torch.enable_grad(), locator.following_modules(), locator:
            fn(sample.clone())
    except Exception:
        pass
    # eager runs may call an op a different number of times than the trace recorded
    stacks = locator.stacks
    index = min(occurrence, len(stacks) - 1)
    stack = stacks[index] if stacks else []
    modules = locator.module_stacks[index] if stacks else []
    # keep only the frames inside ``fn``: those after this function's own frame
    inside = [k for k, f in enumerate(stack) if f.filename == __file__ and f.name == "source_line"]
    stack = stack[inside[-1] + 1:] if inside else stack
    user = [f for f in stack if _is_user_frame(f)]
    in_module = _module_context(modules) if modules and _torch_module(modules[-1]) else None
    if user:
        return _describe_frame(user[-1]) + (f", in {in_module}" if in_module else "")
    if modules:
        return (f"{_module_context(modules)} of the {type(modules[0]).__name__} model (torch calls it: "
                "no line of yours does)")
    return "(source line not found: the op may come from torch's decomposition of another op)"


def raising_line(error):
    """``file:line: code`` of the user's line that raised ``error``."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _is_user_frame(f)]
    return _describe_frame(frames[-1]) if frames else "(source line not found)"


def occurrences(graph):
    """The number of earlier nodes with the same target, for every node of ``graph``."""
    seen, index = {}, {}
    for fx_node in graph.nodes:
        index[fx_node] = seen.get(fx_node.target, 0)
        seen[fx_node.target] = index[fx_node] + 1
    return index
