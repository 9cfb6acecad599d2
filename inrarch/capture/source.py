"""Where an op came from: the user's source line, ``file:line: code``, for capture's errors."""

import os
import traceback

import torch
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
    """Runs the function eagerly and keeps the Python stack of every call of ``target``."""

    def __init__(self, target):
        super().__init__()
        self.target, self.stacks = target, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is self.target:
            self.stacks.append(traceback.extract_stack())
        return func(*args, **(kwargs or {}))


def _describe_frame(frame):
    path = os.path.relpath(frame.filename)
    path = frame.filename if path.startswith("..") else path
    return f"{path}:{frame.lineno}: {(frame.line or '').strip()}"


def source_line(fn, sample, target, occurrence):
    """``file:line: code`` of the user's line that ran the ``occurrence``-th ``target`` op.

    make_fx only records stack traces inside ``forward`` methods, and recording them costs a
    third of the tracing time, so the line is found only when an error needs it: the function
    runs once more, eagerly, under a dispatch mode that records the Python stack at that op.
    """
    locator = _OpLocator(target)
    try:
        with torch.enable_grad(), locator:
            fn(sample.clone())
    except Exception:
        pass
    # eager runs may call an op a different number of times than the trace recorded
    stacks = locator.stacks
    stack = stacks[min(occurrence, len(stacks) - 1)] if stacks else []
    # keep only the frames inside ``fn``: those after this function's own frame
    inside = [k for k, f in enumerate(stack) if f.filename == __file__ and f.name == "source_line"]
    stack = stack[inside[-1] + 1:] if inside else stack
    user = [f for f in stack if _is_user_frame(f)]
    modules = [f for f in stack if f.filename.startswith(os.path.join(_TORCH_DIR, "nn", ""))]
    frames = user or modules
    if not frames:
        return "(source line not found: the op may come from torch's decomposition of another op)"
    return _describe_frame(frames[-1])


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
