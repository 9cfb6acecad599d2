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

Either way the result is a :class:`Formats`: the format of every node and the bits of every
matmul's stored weights and every ``mul_const``'s constants, which lowering, emulation and the
report read.

A graph with runtime weights (``graph.program``) holds for a family of networks, given as
``weight_sets``: the stored tensors of each example network (:func:`weight_set`). The ranges are
the largest over all of them, and the search's errors the worst over all of them, so that the
formats meet the tolerance for every example. The stored tensors' own formats hold their bounds
(``node.meta["bound"]``, set by :func:`inrarch.compile` from the family), whatever the examples.
"""

import functools
import itertools
import math
from collections.abc import Mapping
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

__all__ = ["Formats", "calibration_inputs", "assign_formats", "search_formats", "FormatSearch", "weight_set"]


class Formats(Mapping):
    """The number format of every node of a graph (node → :class:`cores.fixed.Q`) and the bits of
    the stored weights of every node with a matrix (the matmuls) and of the constants of every
    ``mul_const``. Immutable: a change makes another (the format search compares many).

    Parameters
    ----------
    formats : dict
        Node → format.
    weight_widths : dict
        Node → bits of its stored weights, for the nodes with ``attrs["weight"]`` and the ``mul_const``
        nodes.
    search : FormatSearch, optional
        What :func:`search_formats` found, when it chose these formats.
    """

    def __init__(self, formats, weight_widths, search=None):
        self._formats = dict(formats)
        self._weight_widths = dict(weight_widths)
        self.search = search

    def __getitem__(self, node):
        return self._formats[node]

    def __iter__(self):
        return iter(self._formats)

    def __len__(self):
        return len(self._formats)

    def weight_width(self, node):
        """Bits of the stored matrix ``node`` reads, or of a ``mul_const``'s constants."""
        return self._weight_widths[node]

    def found_by(self, search):
        """These formats, as what the format search ``search`` found."""
        return Formats(self._formats, self._weight_widths, search)

    def changed(self, other):
        """The nodes whose format or weight bits differ in ``other``."""
        return [node for node in self if other[node] != self[node]
                or other._weight_widths.get(node) != self._weight_widths.get(node)]



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


def _ranges(graph, values, margin, domain):
    """The magnitude each node's format must hold."""
    ranges = {}
    for node in graph.nodes:
        if node is graph.input:
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


def _formats(graph, ranges, widths, weight_bits):
    """``widths[node]`` bits over each node's range, and ``weight_bits[group]`` for each group of
    :func:`_stored`."""
    formats = unify_shared_weight_formats(graph, {node: _format(ranges[node], widths[node]) for node in graph.nodes})
    return Formats(formats, _weight_widths(weight_bits))


def _stored(graph):
    """The stored operands whose width the search chooses, each a tuple of the nodes that share it:
    the matmuls on one matrix, and each ``mul_const``."""
    groups = {}
    for node in graph.nodes:
        if "weight" in node.attrs:
            groups.setdefault(id(node.attrs["weight"]), []).append(node)
        elif node.op == "mul_const":
            groups[id(node)] = [node]
    return [tuple(nodes) for nodes in groups.values()]


def _weight_widths(weight_bits):
    return {node: bits for group, bits in weight_bits.items() for node in group}


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


def assign_formats(graph, *, width=27, margin=2.0, domain=(-1.0, 1.0), forced=None, samples=256,
                   weight_widths=ULTRASCALE_PLUS.weight_widths, weight_sets=None):
    """The :class:`Formats` that give every node ``forced``, or ``width`` bits over its range (the
    largest over the networks of ``weight_sets``, for a graph with runtime weights).

    Stored matrices and ``mul_const`` vectors get the narrowest of ``weight_widths``
    (:attr:`devices.Device.weight_widths`).
    """
    narrow = dict.fromkeys(_stored(graph), weight_widths[0])
    if forced is not None:
        return Formats(dict.fromkeys(graph.nodes, forced), _weight_widths(narrow))
    values = _largest_values(graph, calibration_inputs(graph.input.shape, domain, samples), weight_sets)
    return _formats(graph, _ranges(graph, values, margin, domain), dict.fromkeys(graph.nodes, width), narrow)


def unify_shared_weight_formats(graph, formats):
    """``formats`` (node → format), with the matmuls that read one stored matrix given the same
    input and output formats.

    Two matmuls on one matrix share its memory banks as two channels of one core, which has one
    input and one output format. The wider range of the two wins (same width, fewer fractional
    bits), which is always safe.
    """
    formats = dict(formats)
    for pair in weight_pairs(graph):
        for side in (lambda n: n.inputs[0], lambda n: n):
            nodes = [side(n) for n in pair]
            widest = max((formats[n] for n in nodes), key=lambda f: f.int_bits)
            formats.update(dict.fromkeys(nodes, widest))
    return formats


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
    recomputing only what a change touches. ``formats`` are the ones started or changed to last,
    ``weight_bits`` the bits of each group of :func:`_stored`."""

    def __init__(self, graph, ranges, x, weight_sets, bar, weight_bits=None):
        self.graph, self.ranges, self.x = graph, ranges, x
        self.weight_sets = weight_sets
        self.references = _references(graph, x, weight_sets)
        self.bar = bar
        self.weight_bits = weight_bits
        self.count = 0
        self.emulators = None
        self.formats = None
        self.models = {}

    def _errors(self, emulators):
        return [max(errors) for errors in zip(*(relative_errors(emulator.outputs(), references)
                                                for emulator, references in zip(emulators, self.references)))]

    def _try(self, widths):
        self.count += 1
        self.bar.update()
        return _formats(self.graph, self.ranges, widths, self.weight_bits)

    def start(self, widths):
        """Emulate ``widths`` from scratch and return the errors (infinite where some core cannot
        be built at those widths, e.g. a function table too large for a very wide output)."""
        self.formats = self._try(widths)
        try:
            self.emulators = _each_set(self.graph, self.weight_sets,
                                       lambda: Emulator(self.graph, self.formats, self.x, self.models))
        except ValueError:
            self.emulators = None
            return [math.inf] * len(self.graph.outputs)
        return self._errors(self.emulators)

    def change(self, widths, target):
        """Move to ``widths`` if its worst error is within ``target`` (return True); else stay."""
        formats = self._try(widths)
        emulators = iter(self.emulators)
        try:
            updated = _each_set(self.graph, self.weight_sets, lambda: next(emulators).updated(formats))
        except ValueError:
            return False
        if max(self._errors(updated)) > target:
            return False
        self.formats, self.emulators = formats, updated
        return True


def _bits(formats):
    return sum(fmt.width * node.numel for node, fmt in formats.items())


def _bisections(low, high):
    """The most trials a bisection for the narrowest passing width in ``[low, high]`` runs."""
    return math.ceil(math.log2(high - low + 1))


def _expect(bar, remaining):
    """At most ``remaining`` more trials: the bar's total, an upper bound, tightens as the search learns."""
    bar.total = bar.n + remaining
    bar.refresh()


def search_formats(graph, *, tolerance=1e-3, safety=8.0, margin=2.0, domain=(-1.0, 1.0), samples=256,
                   search_samples=32, min_width=4, max_width=36, weight_widths=ULTRASCALE_PLUS.weight_widths,
                   operand_width=None, weight_sets=None, progress=False):
    """The formats with the fewest bits per node that keep each output within ``tolerance × max|ref|``.

    The ranges come from ``samples`` calibration points; the search measures errors on
    ``search_samples`` of them (and the domain's corners and centre), then checks the result on
    ``samples`` other points: where the error there exceeds ``2 * tolerance / safety``, every
    edge gets one more bit (up to ``max_width``) until it does not. ``progress=True`` shows the
    trials on stderr, out of an upper bound that tightens as the search goes. Each stored matrix
    and ``mul_const`` vector takes the narrowest of ``weight_widths``
    (:attr:`devices.Device.weight_widths`) with which the widest edges meet the target. With
    ``operand_width`` (the wide port of the device's DSP multiplier), the edges that the one width
    leaves wider are first tried at ``operand_width`` bits, the inputs of the matmuls first, then
    the others by elements per sample, each kept there where the target allows it: their products
    then need not be split over several DSPs (on an 18 × 18 multiplier, a 21-bit operand takes
    two). The edges are narrowed one by one after that. For a graph with runtime weights,
    ``weight_sets`` (:func:`weight_set`) are the networks whose worst error must meet it.

    Returns the :class:`Formats`, with what the search found in their ``search``
    (:class:`FormatSearch`); raises :class:`~inrarch.CompileError` when even
    ``max_width`` bits everywhere miss the target on the search points, or when the error on the
    check points stays above ``tolerance``.
    """
    with progress_bar("format search", enabled=progress, unit="trial") as bar:
        return _search(graph, tolerance, safety, margin, domain, samples, search_samples, min_width, max_width,
                       weight_widths, operand_width, weight_sets, bar)


def _operands_first(graph):
    """The nodes whose values a folded core (a matmul, :attr:`OpSpec.fold`) reads, then every other
    node by elements per sample, most first."""
    folded_inputs = {source for node in graph.nodes if OPS[node.op].fold is not None for source in node.inputs}
    return sorted(graph.nodes, key=lambda n: (n not in folded_inputs, -n.numel))


def _stored_widths(graph, trials, uniform, weight_widths, target, tolerance, safety, max_width):
    """The width of each stored operand (:func:`_stored`): all the narrowest of ``weight_widths`` when
    that meets ``target`` at the widest edges; else all the widest, then each back to the narrowest,
    the largest first, wherever the target still holds."""
    groups = _stored(graph)
    narrow, wide = weight_widths[0], weight_widths[-1]
    trials.weight_bits = dict.fromkeys(groups, narrow)
    if max(trials.start(uniform(max_width))) <= target or narrow == wide:
        return trials.weight_bits
    trials.weight_bits = dict.fromkeys(groups, wide)
    widest = max(trials.start(uniform(max_width)))
    if widest > target:
        raise CompileError(f"even {max_width}-bit values and {wide}-bit weights miss the error target: "
                           f"{widest:.2e} × max|ref| on calibration inputs, over tolerance {tolerance:g} / "
                           f"safety {safety:g}")
    for group in sorted(groups, key=lambda nodes: -_stored_elements(nodes[0])):
        chosen = trials.weight_bits
        trials.weight_bits = {**chosen, group: narrow}
        if max(trials.start(uniform(max_width))) > target:
            trials.weight_bits = chosen
    return trials.weight_bits


def _stored_elements(node):
    return node.attrs["weight"].matrix.size if "weight" in node.attrs else node.numel


def _search(graph, tolerance, safety, margin, domain, samples, search_samples, min_width, max_width, weight_widths,
            operand_width, weight_sets, bar):
    x = calibration_inputs(graph.input.shape, domain, samples)
    ranges = _ranges(graph, _largest_values(graph, x, weight_sets), margin, domain)
    x_search = calibration_inputs(graph.input.shape, domain, search_samples)
    trials = _Trials(graph, ranges, x_search, weight_sets, bar)
    target = tolerance / safety

    def uniform(width):
        return dict.fromkeys(graph.nodes, width)

    span, widening = _bisections(min_width, max_width), max_width - min_width + 1
    _expect(bar, 2 + len(_stored(graph)) + span + 1 + len(graph.nodes) * span + widening)
    weights = _stored_widths(graph, trials, uniform, weight_widths, target, tolerance, safety, max_width)
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
    bits = {"uniform": _bits(trials.formats)}
    wide = [] if operand_width is None else [n for n in _operands_first(graph) if widths[n] > operand_width]
    _expect(bar, len(wide) + len(graph.nodes) * _bisections(min_width, high) + widening)
    for node in wide:
        if trials.change({**widths, node: operand_width}, target):
            widths[node] = operand_width
    for node in sorted(graph.nodes, key=lambda n: -n.numel):
        low = min_width
        while low < widths[node]:
            middle = (low + widths[node]) // 2
            if trials.change({**widths, node: middle}, target):
                widths[node] = middle
            else:
                low = middle + 1
    x_check = calibration_inputs(graph.input.shape, domain, samples, seed=1)
    check = _Trials(graph, ranges, x_check, weight_sets, bar, weights)
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
    bits["searched"] = _bits(check.formats)
    _expect(bar, 0)
    names = {group: group[0].attrs["weight"].name if "weight" in group[0].attrs else group[0].name
             for group in weights}
    search = FormatSearch(tolerance=tolerance, target=target, uniform_width=high,
                          weight_width=max(weights.values(), default=weight_widths[0]),
                          weight_widths={names[group]: bits for group, bits in weights.items()}, errors=errors,
                          trials=trials.count + check.count, widened=widened, bits_per_sample=bits,
                          networks=len(weight_sets or [None]))
    return check.formats.found_by(search)
