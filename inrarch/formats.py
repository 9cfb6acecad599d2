"""Number formats: range analysis picks the integer bits of every edge, an error search the rest.

Ranges come from calibration: the graph runs in float64 on samples drawn from the input domain
(its corners, its centre and uniform random points), and each node gets a format whose integer
part holds its largest magnitude times a safety ``margin``. Ops with a known bound (sin, cos,
tanh, sigmoid, step: ``OpSpec.bound``) get that bound instead.

The widths then come from one of three places:

* :func:`search_formats` (what :func:`inrarch.compile` does by default) finds the fewest bits per
  edge that keep every output within ``tolerance × max|reference|``, with each stored matrix (and
  each ``mul_const`` vector) as wide as the narrower port of the device's DSP multiplier (18 bits
  on a DSP48E2) or, where that alone bounds the error above the target, as wide as its wider port
  (27 bits): first all narrow; if that misses the target even with the widest edges, all wide,
  and then each one back to narrow, the largest first, wherever the target still holds. It measures the error of
  candidate formats by bit-exact emulation of the hardware (:mod:`inrarch.emulate`) on the
  calibration samples against float64, and aims at ``tolerance / safety`` there so that inputs it
  never saw stay within the bar. First it bisects on one width for every edge; then, edge by edge
  in order of the elements it carries per sample (most first), it bisects on that edge's width
  with all the others fixed. The error does not grow with the width, so each bisection finds the
  narrowest width that passes;
* :func:`assign_formats` with a ``width`` gives every edge that many bits;
* :func:`assign_formats` with ``forced`` gives every edge one format.

Either way every matmul and ``mul_const`` node gets ``meta["weight_width"]``, the bits of its
stored weights or constants.

A graph with runtime weights (``graph.program``) holds for a family of networks, given as
``weight_sets``: the stored tensors of each example network (:func:`weight_set`). The ranges are
the largest over all of them, and the search's errors the worst over all of them, so that the
formats meet the tolerance for every example. The stored tensors' own formats hold their bounds
(``node.meta["bound"]``, set by :func:`inrarch.compile` from the family), whatever the examples.
"""

import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from cores.fixed import Q
from devices import ULTRASCALE_PLUS
from sim.progress import progress_bar

from .emulate import Emulator, relative_errors
from .errors import CompileError
from .ir import evaluate, loaded, runtime_tensors
from .ops import OPS
from .passes import weight_pairs

__all__ = ["calibration_inputs", "assign_formats", "search_formats", "FormatSearch", "weight_set"]



def _per_element(domain):
    """Whether ``domain`` gives one ``(low, high)`` per input element rather than one for all."""
    return isinstance(domain[0], (tuple, list))


def calibration_inputs(shape, domain, samples=256, seed=0):
    """Points of the input domain: all corners (up to 64), the centre, and uniform random points.

    ``domain`` is one ``(low, high)`` for every input element, or one per element.
    """
    features = int(np.prod(shape))
    if _per_element(domain):
        low, high = (np.array([pair[k] for pair in domain], dtype=np.float64) for k in (0, 1))
        sides = list(zip(low, high))
    else:
        low, high = domain
        sides = [(low, high)] * features
    rng = np.random.default_rng(seed)
    corners = list(itertools.islice(itertools.product(*sides), 64))
    points = np.concatenate([np.asarray(corners, dtype=np.float64).reshape(-1, features),
                             np.broadcast_to((low + high) / 2.0, (1, features)),
                             rng.uniform(low, high, size=(samples, features))])
    return points.reshape(-1, *shape)


def weight_set(graph, tensors):
    """The stored tensors of ``graph`` for one network: ``tensors`` (what ``graph.program`` computes
    for it), each shaped like the graph's runtime tensor it replaces."""
    return [np.asarray(tensors[weight.runtime], dtype=np.float64).reshape(weight.matrix.shape)
            for weight in runtime_tensors(graph)]


def _each_set(graph, weight_sets, function):
    """``function()`` for each network of ``weight_sets`` (None: the graph's own values), as a list."""
    results = []
    for tensors in weight_sets or [None]:
        if tensors is None:
            results.append(function())
            continue
        with loaded(graph, dict(zip((w.runtime for w in runtime_tensors(graph)), tensors))):
            results.append(function())
    return results


def _largest_values(graph, x, weight_sets):
    """Each node's values on ``x``, the largest magnitude over the networks of ``weight_sets``."""
    runs = _each_set(graph, weight_sets, lambda: evaluate(graph, x))
    return {node: np.max([np.abs(run[node]) for run in runs], axis=0) for node in graph.nodes}


def _references(graph, x, weight_sets):
    """The float64 outputs on ``x`` of each network of ``weight_sets``."""
    return _each_set(graph, weight_sets, lambda: [values[node] for values in [evaluate(graph, x)]
                                                  for node in graph.outputs])


def _ranges(graph, values, margin, domain):
    """The magnitude each node's format must hold."""
    ranges = {}
    for node in graph.nodes:
        if node.op == "input":
            ranges[node] = max(abs(bound) for pair in (domain if _per_element(domain) else [domain])
                               for bound in pair)
        elif OPS[node.op].bound is not None:
            ranges[node] = OPS[node.op].bound
        else:
            ranges[node] = float(np.max(np.abs(values[node]))) * margin
    return ranges


@functools.lru_cache(maxsize=None)
def _format(magnitude, width):
    return Q.for_range(magnitude, width)


def _set_widths(graph, ranges, widths):
    for node in graph.nodes:
        node.meta["format"] = _format(ranges[node], widths[node])
    unify_shared_weight_formats(graph)


def assign_formats(graph, *, width=27, margin=2.0, domain=(-1.0, 1.0), forced=None, samples=256,
                   weight_widths=ULTRASCALE_PLUS.weight_widths, weight_sets=None):
    """Give every node ``node.meta["format"]``: ``forced``, or ``width`` bits over its range (the
    largest over the networks of ``weight_sets``, for a graph with runtime weights).

    Stored matrices and ``mul_const`` vectors get the narrowest of ``weight_widths``
    (:attr:`devices.Device.weight_widths`).
    """
    _set_weight_widths(graph, dict.fromkeys(_stored(graph), weight_widths[0]))
    if forced is not None:
        for node in graph.nodes:
            node.meta["format"] = forced
        return
    values = _largest_values(graph, calibration_inputs(graph.input.shape, domain, samples), weight_sets)
    _set_widths(graph, _ranges(graph, values, margin, domain), dict.fromkeys(graph.nodes, width))


def unify_shared_weight_formats(graph):
    """Give the matmuls that read one stored matrix the same input and output formats.

    Two matmuls on one matrix share its memory banks as two channels of one core, which has one
    input and one output format. The wider range of the two wins (same width, fewer fractional
    bits), which is always safe.
    """
    for pair in weight_pairs(graph):
        for side in (lambda n: n.inputs[0], lambda n: n):
            nodes = [side(n) for n in pair]
            widest = max((n.meta["format"] for n in nodes), key=lambda f: f.int_bits)
            for n in nodes:
                n.meta["format"] = widest
    return graph


@dataclass
class FormatSearch:
    """What :func:`search_formats` found."""

    tolerance: float
    target: float
    uniform_width: int              # the narrowest single width for every edge that meets the target
    errors: list                    # per output: max |emulated - float64| / max |float64|, check points
    weight_width: int               # bits of the widest stored matrix or mul_const vector
    trials: int                     # emulations run
    widened: int                    # bits the final check added to every edge
    bits_per_sample: dict = field(default_factory=dict)   # "uniform" / "searched": Σ width × elements
    weight_widths: dict = field(default_factory=dict)     # bits of each stored matrix and mul_const vector
    networks: int = 1               # networks the errors are the worst of (the examples of a weight family)

    def as_dict(self):
        return {"tolerance": self.tolerance, "target": self.target, "uniform_width": self.uniform_width,
                "weight_width": self.weight_width, "weight_widths": self.weight_widths, "errors": self.errors,
                "trials": self.trials, "widened": self.widened, "bits_per_sample": self.bits_per_sample,
                "networks": self.networks}


class _Trials:
    """Bit-exact errors of width choices, the worst over the networks of ``weight_sets``,
    recomputing only what a change touches."""

    def __init__(self, graph, ranges, x, weight_sets, bar):
        self.graph, self.ranges, self.x = graph, ranges, x
        self.weight_sets = weight_sets
        self.references = _references(graph, x, weight_sets)
        self.bar = bar
        self.count = 0
        self.emulators = None
        self.models = {}

    def errors(self):
        return [max(errors) for errors in zip(*(relative_errors(emulator.outputs(), references)
                                                for emulator, references in zip(self.emulators, self.references)))]

    def start(self, widths):
        """Emulate ``widths`` from scratch and return the errors (infinite where some core cannot
        be built at those widths, e.g. a function table too large for a very wide output)."""
        _set_widths(self.graph, self.ranges, widths)
        self.count += 1
        self.bar.update()
        try:
            self.emulators = _each_set(self.graph, self.weight_sets,
                                       lambda: Emulator(self.graph, self.x, self.models))
        except ValueError:
            self.emulators = None
            return [math.inf] * len(self.graph.outputs)
        return self.errors()

    def change(self, widths, target):
        """Move to ``widths`` if its worst error is within ``target`` (return True); else stay."""
        before = {node: node.meta["format"] for node in self.graph.nodes}
        saved = [dict(emulator.raw) for emulator in self.emulators]
        _set_widths(self.graph, self.ranges, widths)
        self.count += 1
        self.bar.update()
        changed = [node for node in self.graph.nodes if node.meta["format"] != before[node]]
        emulators = iter(self.emulators)
        try:
            _each_set(self.graph, self.weight_sets, lambda: next(emulators).update(changed))
            if max(self.errors()) <= target:
                return True
        except ValueError:
            pass
        for node, fmt in before.items():
            node.meta["format"] = fmt
        for emulator, raw in zip(self.emulators, saved):
            emulator.raw = raw
        return False


def _bits(graph):
    return sum(node.meta["format"].width * node.numel for node in graph.nodes)


def _bisections(low, high):
    """The most trials a bisection for the narrowest passing width in ``[low, high]`` runs."""
    return math.ceil(math.log2(high - low + 1))


def _expect(bar, remaining):
    """At most ``remaining`` more trials: the bar's total, an upper bound, tightens as the search learns."""
    bar.total = bar.n + remaining
    bar.refresh()


def search_formats(graph, *, tolerance=1e-3, safety=8.0, margin=2.0, domain=(-1.0, 1.0), samples=256,
                   search_samples=32, min_width=4, max_width=36, weight_widths=ULTRASCALE_PLUS.weight_widths,
                   weight_sets=None, progress=False):
    """Give every node the fewest bits that keep each output within ``tolerance × max|ref|``.

    The ranges come from ``samples`` calibration points; the search measures errors on
    ``search_samples`` of them (and the domain's corners and centre), then checks the result on
    ``samples`` other points: where the error there exceeds ``2 * tolerance / safety``, every
    edge gets one more bit (up to ``max_width``) until it does not. ``progress=True`` shows the
    trials on stderr, out of an upper bound that tightens as the search goes. Each stored matrix
    and ``mul_const`` vector takes the narrowest of ``weight_widths``
    (:attr:`devices.Device.weight_widths`) with which the widest edges meet the target. For a graph
    with runtime weights, ``weight_sets`` (:func:`weight_set`) are the networks whose worst error
    must meet it.

    Returns a :class:`FormatSearch`; raises :class:`~inrarch.CompileError` when even
    ``max_width`` bits everywhere miss the target on the search points, or when the error on the
    check points stays above ``tolerance``.
    """
    with progress_bar("format search", enabled=progress, unit="trial") as bar:
        return _search(graph, tolerance, safety, margin, domain, samples, search_samples, min_width, max_width,
                       weight_widths, weight_sets, bar)


def _stored(graph):
    """The stored operands whose width the search chooses, each a tuple of the nodes that share it:
    the matmuls on one matrix, and each ``mul_const``."""
    groups = {}
    for node in graph.nodes:
        if node.op == "matmul":
            groups.setdefault(id(node.attrs["weight"]), []).append(node)
        elif node.op == "mul_const":
            groups[id(node)] = [node]
    return [tuple(nodes) for nodes in groups.values()]


def _set_weight_widths(graph, widths):
    """``widths``: bits of each group of :func:`_stored`."""
    for group, bits in widths.items():
        for node in group:
            node.meta["weight_width"] = bits


def _weight_widths(graph, trials, uniform, weight_widths, target, tolerance, safety, max_width):
    """The width of each stored operand (:func:`_stored`): all the narrowest of ``weight_widths`` when
    that meets ``target`` at the widest edges; else all the widest, then each back to the narrowest,
    the largest first, wherever the target still holds."""
    groups = _stored(graph)
    narrow, wide = weight_widths[0], weight_widths[-1]
    widths = dict.fromkeys(groups, narrow)
    _set_weight_widths(graph, widths)
    if max(trials.start(uniform(max_width))) <= target or narrow == wide:
        return widths
    widths = dict.fromkeys(groups, wide)
    _set_weight_widths(graph, widths)
    widest = max(trials.start(uniform(max_width)))
    if widest > target:
        raise CompileError(f"even {max_width}-bit values and {wide}-bit weights miss the error target: "
                           f"{widest:.2e} × max|ref| on calibration inputs, over tolerance {tolerance:g} / "
                           f"safety {safety:g}")
    for group in sorted(groups, key=lambda nodes: -_stored_elements(nodes[0])):
        _set_weight_widths(graph, {**widths, group: narrow})
        if max(trials.start(uniform(max_width))) <= target:
            widths[group] = narrow
        else:
            _set_weight_widths(graph, widths)
    return widths


def _stored_elements(node):
    return node.attrs["weight"].matrix.size if node.op == "matmul" else node.numel


def _search(graph, tolerance, safety, margin, domain, samples, search_samples, min_width, max_width, weight_widths,
            weight_sets, bar):
    x = calibration_inputs(graph.input.shape, domain, samples)
    ranges = _ranges(graph, _largest_values(graph, x, weight_sets), margin, domain)
    x_search = calibration_inputs(graph.input.shape, domain, search_samples)
    trials = _Trials(graph, ranges, x_search, weight_sets, bar)
    target = tolerance / safety

    def uniform(width):
        return dict.fromkeys(graph.nodes, width)

    span, widening = _bisections(min_width, max_width), max_width - min_width + 1
    stored = len(_stored(graph))
    _expect(bar, 2 + stored + span + 1 + len(graph.nodes) * span + widening)
    stored_widths = _weight_widths(graph, trials, uniform, weight_widths, target, tolerance, safety, max_width)
    _expect(bar, span + 1 + len(graph.nodes) * span + widening)
    low, high = min_width, max_width
    while low < high:
        middle = (low + high) // 2
        if max(trials.start(uniform(middle))) <= target:
            high = middle
        else:
            low = middle + 1
    _expect(bar, 1 + len(graph.nodes) * _bisections(min_width, high) + widening)
    widths = uniform(high)
    trials.start(widths)
    bits = {"uniform": _bits(graph)}
    for node in sorted(graph.nodes, key=lambda n: -n.numel):
        low = min_width
        while low < widths[node]:
            middle = (low + widths[node]) // 2
            if trials.change({**widths, node: middle}, target):
                widths[node] = middle
            else:
                low = middle + 1
    x_check = calibration_inputs(graph.input.shape, domain, samples, seed=1)
    check = _Trials(graph, ranges, x_check, weight_sets, bar)
    _expect(bar, 1 + max_width - min(widths.values()))
    widened = 0
    errors = check.start(widths)
    while max(errors) > 2 * target and min(widths.values()) < max_width:
        widths = {node: min(width + 1, max_width) for node, width in widths.items()}
        widened += 1
        errors = check.start(widths)
    if not max(errors) <= tolerance:
        raise CompileError(f"no number formats of up to {max_width} bits meet the tolerance: "
                           f"{max(errors):.2e} × max|ref| on check inputs, over the tolerance {tolerance:g}; "
                           "try a larger tolerance or margin, or a narrower domain")
    bits["searched"] = _bits(graph)
    _expect(bar, 0)
    names = {group: group[0].attrs["weight"].name if group[0].op == "matmul" else group[0].name
             for group in stored_widths}
    return FormatSearch(tolerance=tolerance, target=target, uniform_width=high,
                        weight_width=max(stored_widths.values(), default=weight_widths[0]),
                        weight_widths={names[group]: bits for group, bits in stored_widths.items()},
                        errors=errors, trials=trials.count + check.count, widened=widened, bits_per_sample=bits,
                        networks=len(weight_sets or [None]))
