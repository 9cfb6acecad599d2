"""The proofs of every core that :mod:`cores` exports, generated from the exported list.

Each exported core class has a small instance here (:data:`INSTANCES`): formats of 2 to 4 bits,
two or three tokens a firing, so that a proof covers whole firings in a few dozen cycles and
every output element's reference fits a table. Nothing else is written per core: the properties
(:class:`~formal.streams.StreamContractSpec`) read the core's ports, contracts and reference.
The nonlinear cores of the op registry (:data:`inrarch.ops.OPS`) need no entry: one without is
proved at :func:`registered_arguments`, so a new op's core (``docs/adding-an-op.md``) is proved
with no edit here. :func:`missing_instances` names any other exported core without an instance,
which a test turns into a failure: its constructor's arguments cannot be guessed.

Two proofs per instance:

* :func:`contract_proof`: every property of :data:`~formal.streams.PROPERTIES`, by bounded
  model checking from reset to a depth that covers at least ``firings`` whole firings of every
  channel (:func:`~formal.streams.firing_cycles`);
* :func:`induction_proof`: the output protocol by k-induction, for every state, reachable in a
  bounded run or not. Where it closes it is proved outright; where the induction needs more
  than the core's ports to close (a state of the core's registers that no run reaches but that
  breaks the protocol one cycle on), it stays bounded.
"""

import numpy as np
from amaranth.lib import wiring

import cores
from cores import Q
from inrarch.ir import Node
from inrarch.ops import OPS

from .proof import prove
from .streams import PROPERTIES, StreamContractSpec, firing_cycles

__all__ = ["INSTANCES", "REGISTERED_SCALE", "registered_arguments", "instance_names", "arguments", "missing_instances",
           "build", "contract_depth", "contract_proof", "cover_proof", "induction_proof"]

A, B, C, OUT = Q(2, 2), Q(1, 2), Q(1, 1), Q(3, 2)


def _arguments(*args, **kwargs):
    return args, kwargs


#: Small instances of every core class :mod:`cores` exports, keyed by the class name (and a label
#: after a space for a further variant).
INSTANCES = {
    "Add": _arguments(A, B, OUT, lanes=2),
    "Sub": _arguments(A, B, OUT),
    "Mul": _arguments(A, B, OUT, lanes=2),
    "Neg": _arguments(A, OUT),
    "Scale": _arguments(A, OUT, -1.5),
    "MulAdd": _arguments(B, B, B, OUT),
    "AddConst": _arguments(A, OUT, [0.5, -1.25, 1.0, 0.75], lanes=2),
    "MulConst": _arguments(A, OUT, [0.5, -1.25]),
    "Sin": _arguments(A, Q(2, 3), scale=3.0, lanes=2),
    "Cos": _arguments(A, Q(2, 3), scale=3.0),
    "Tanh": _arguments(A, Q(2, 3)),
    "Sigmoid": _arguments(A, Q(2, 3), scale=0.5),
    "Softplus": _arguments(A, OUT),
    "Exp": _arguments(A, Q(4, 2)),
    "Sqrt": _arguments(A, OUT, scale=2.0),
    "Relu": _arguments(A, OUT, scale=3.0),
    "Step": _arguments(A, OUT),
    "MatVec": _arguments(np.linspace(-1, 1, 6).reshape(3, 2), C, OUT, channels=("forward", "transpose"), parallel=2,
                         weight_width=3),
    "Pacer": _arguments(A, 2, 5),
    "Pacer lanes=2": _arguments(A, 2, 6, lanes=2),
    "Fork": _arguments(A, 2, lanes=2),
    "Gather": _arguments([(A, 2), (B, 1)], Q(2, 1), [(1, 0), 0.75, (0, 1), (0, 0)]),
    "LaneConverter": _arguments(A, 2, 1),
    "LaneConverter widening": _arguments(A, 1, 2),
    "LaneSerializer": _arguments(A, 2, 2),
    "StreamFIFO": _arguments(A, 3),
    "RelayStation": _arguments(A, lanes=2),
    "Sum": _arguments(C, OUT, 2, lanes=2),
    "Accumulate": _arguments(A, OUT, 2, lanes=2),
}


#: The ``scale`` of a registered nonlinear core's instance made by :func:`registered_arguments`.
REGISTERED_SCALE = 0.75
_REGISTERED_WIDTH = 5


def _registered():
    """``{class name: (class, op spec)}`` of the registry's nonlinear cores without an entry in
    :data:`INSTANCES` (read each time: a test may register an op)."""
    have = {name.partition(" ")[0] for name in INSTANCES}
    found = {}
    for spec in OPS.values():
        if spec.scaled and spec.core_class.__name__ not in have:
            found[spec.core_class.__name__] = (spec.core_class, spec)
    return found


def registered_arguments(spec):
    """The arguments of a small instance of the core of the registered nonlinear op ``spec``: the
    input in ``A``, ``scale`` :data:`REGISTERED_SCALE`, the output 5 bits wide over the op's
    bound, or over the function's largest magnitude on every value of ``A``."""
    bound = spec.bound
    if bound is None:
        values = np.arange(-(1 << (A.width - 1)), 1 << (A.width - 1)) * 2.0 ** -A.frac_bits
        node = Node(spec.name, [], (1,), attrs={"scale": REGISTERED_SCALE})
        with np.errstate(all="ignore"):
            bound = float(np.max(np.abs(spec.semantics(node, [values]))))
    return _arguments(A, Q.for_range(bound, _REGISTERED_WIDTH), scale=REGISTERED_SCALE)


def instance_names():
    """Every instance that is proved: :data:`INSTANCES`, and the registry's other nonlinear cores."""
    return sorted([*INSTANCES, *_registered()])


def arguments(name):
    """``(args, kwargs)`` of instance ``name``."""
    if name in INSTANCES:
        return INSTANCES[name]
    return registered_arguments(_registered()[name][1])


def _core_class(name):
    base = name.partition(" ")[0]
    registered = _registered()
    return registered[base][0] if base in registered else getattr(cores, base)


def exported_cores():
    """The names of the core classes :mod:`cores` exports."""
    return sorted(name for name in cores.__all__ if isinstance(getattr(cores, name), type)
                  and issubclass(getattr(cores, name), wiring.Component))


def missing_instances():
    """Exported core classes without an instance: neither in :data:`INSTANCES` nor registered."""
    have = {name.partition(" ")[0] for name in instance_names()}
    return [name for name in exported_cores() if name not in have]


def build(name):
    """A new core of instance ``name``."""
    args, kwargs = arguments(name)
    return _core_class(name)(*args, **kwargs)


def contract_depth(name, firings=2):
    """The least depth whose bounded runs cover ``firings`` whole firings of every channel of the
    instance, inputs always valid and outputs always ready."""
    core = build(name)
    core._MustUse__silence = True  # only its contracts are read
    return firing_cycles(core, firings)


def contract_proof(name, *, depth=None, firings=2, solver=None, directory=None, timeout=None):
    """Every stream-contract property of the instance, bounded to ``depth`` (by default
    :func:`contract_depth`), the payload checked over its first ``firings`` firings.

    Returns the :class:`~formal.proof.ProofResult` and the spec (whose ``unchecked`` says what it
    could not check).
    """
    depth = depth or contract_depth(name, firings)
    spec = StreamContractSpec(build(name), bound=depth, properties=PROPERTIES, firings=firings)
    options = {} if solver is None else {"solver": solver}
    return prove(spec, name=f"{name}: stream contract", mode="bmc", depth=depth, directory=directory,
                 timeout=timeout, **options), spec


def cover_proof(name, *, depth=None, firings=2, solver=None, directory=None):
    """A trace of the contract proof's spec in which ``firings`` firings of every channel are taken
    and all of their tokens are out within ``depth``: the bounded proof is not vacuous there."""
    depth = depth or contract_depth(name, firings)
    spec = StreamContractSpec(build(name), bound=depth, properties=("reads", "tokens"), firings=firings)
    options = {} if solver is None else {"solver": solver}
    return prove(spec, name=f"{name}: {firings} firings", mode="cover", depth=depth, directory=directory, **options)


def induction_proof(name, *, depth, solver=None, directory=None):
    """The output protocol of the instance by k-induction of length ``depth``."""
    spec = StreamContractSpec(build(name), bound=depth, properties=("protocol",))
    options = {} if solver is None else {"solver": solver}
    return prove(spec, name=f"{name}: output protocol", mode="prove", depth=depth, directory=directory, **options)
