# amaranth: UnusedElaboratable=no
# (Blueprint.build builds the cores of designs, where identical ones become one shared module, cores.shared:
# a core that stands for its module is not elaborated itself.)
"""The interface every core has, and models that give it without building hardware.

Every core in this library has

* ``contract``: its cycle-exact :class:`~cores.contract.TimingContract`;
* ``reference(*inputs)``: the raw outputs its hardware gives, bit for bit, for raw inputs, one
  integer array per input port in port order, the last axis in stream order (whole firings);
  one array, or a tuple of one per output port for a core with several;
* ``multipliers``: every :class:`~cores.multiply.Multiplier` its hardware builds, one entry per
  copy, so that its DSP slices are the sum of their ``dsps``;
* ``memories``: every memory its hardware holds, as :class:`Storage`;
* ``cycle_model(firings)``: its :class:`~cores.contract.CycleModel`, which inputs it takes and
  whether its output is valid, cycle by cycle, under any back-pressure.

Every core the compiler places (all but the fork and the lane converter) is a
:class:`ModelledComponent`: a model class holds its parameters and all of the above,
and the core adds the ports and the elaboration. ``Core.model(*args)`` takes the core's own
arguments and builds the model alone, with no amaranth component: the format search emulates
whole designs with models, and the compiler explores and reports candidate designs with them. A
:class:`Blueprint` holds a core's class and arguments, so that its model is built at once and its
component only when a design is elaborated.
"""

import functools
from dataclasses import dataclass, field
from typing import NamedTuple

from amaranth.lib import wiring

__all__ = ["Storage", "ModelledComponent", "Blueprint"]


class Storage(NamedTuple):
    """A memory of a core: ``copies`` memories of ``depth`` words of ``width`` bits, with initial
    contents (a ROM, or the constants of a buffer) when ``initialized``."""

    width: int
    depth: int
    initialized: bool
    copies: int = 1


class ModelledComponent(wiring.Component):
    """A core built on its model: the first class of the core's bases that is not amaranth's.

    The model's ``__init__`` sets every parameter from the core's arguments; :meth:`members` then
    gives the ports from those parameters.
    """

    def __init__(self, *args, **kwargs):
        self.model_class().__init__(self, *args, **kwargs)
        super().__init__(self.members())

    @classmethod
    def model_class(cls):
        """The first class of ``cls.__mro__`` that is neither a component nor one of amaranth's bases."""
        hardware = set(ModelledComponent.__mro__)
        return next(base for base in cls.__mro__ if base not in hardware and not issubclass(base, wiring.Component))

    @classmethod
    def model(cls, *args, **kwargs):
        """The model of ``cls(*args, **kwargs)``: its interface, and no hardware."""
        return cls.model_class()(*args, **kwargs)

    def members(self):
        """The signature members of the core, from its parameters."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Blueprint:
    """A core to build: its class and arguments. Its :attr:`model` is built once, with no
    hardware; :meth:`build` builds the component, each time it is called.

    Parameters
    ----------
    core : type
        A :class:`ModelledComponent` class.
    args : tuple
    kwargs : dict
        The arguments of ``core(*args, **kwargs)`` and of ``core.model(*args, **kwargs)``.
    """

    core: type
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @functools.cached_property
    def model(self):
        """The core's model (:meth:`ModelledComponent.model`)."""
        return self.core.model(*self.args, **self.kwargs)

    def build(self):
        """The core itself, an amaranth component."""
        return self.core(*self.args, **self.kwargs)
