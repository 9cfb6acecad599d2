"""``CompileOptions``: how :func:`inrarch.compile` turns a function into a design, checked once.

Every option of a compile is a field of one frozen dataclass, and its ``__post_init__`` is the one
place that checks them: the keyword arguments of :func:`inrarch.compile`, the command line
(:class:`inrarch.build.BuildConfig`) and the sweep all come through it. A bad value raises
:class:`~inrarch.OptionError`, which names the option.
"""

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from cores.fixed import Q
from devices import ULTRASCALE_PLUS, Device

from .errors import OptionError

__all__ = ["CompileOptions", "DEFAULT_DOMAIN"]

#: The input range the formats are derived for unless told otherwise: every element in [-1, 1].
DEFAULT_DOMAIN = (-1.0, 1.0)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _integer(name, value, least):
    if value is None:
        return
    if not _is_integer(value):
        raise OptionError(name, f"must be an integer, not {value!r}")
    if value < least:
        raise OptionError(name, f"must be at least {least}, not {value}")


def _range(value):
    """``(low, high)`` as floats, or None when ``value`` is not a pair of finite numbers, low < high."""
    try:
        low, high = value
    except (TypeError, ValueError):
        return None
    if not (_is_number(low) and _is_number(high) and math.isfinite(low) and math.isfinite(high) and low < high):
        return None
    return float(low), float(high)


def _domain(value):
    """``(low, high)`` for every input element, or a tuple of one such range per input element."""
    single = _range(value)
    if single is not None:
        return single
    try:
        ranges = tuple(_range(item) for item in value)
    except TypeError:
        ranges = ()
    if not ranges or None in ranges:
        raise OptionError("domain", f"must be a range (low, high) with low < high, or one such range per input, "
                                    f"not {value!r}")
    return ranges


def _examples(value):
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise OptionError("weight_examples", f"must be a list of networks (torch.nn.Module or state_dict), not "
                                         f"{type(value).__name__}")


def _bounds(value):
    """``weight_bounds`` as sorted ``(name, bound)`` pairs: the options stay hashable."""
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = tuple(sorted((str(name), bound) for name, bound in items))
    except (TypeError, ValueError):
        raise OptionError("weight_bounds", f"must map tensor names to bounds, not {value!r}") from None
    for name, bound in pairs:
        if not (_is_number(bound) and math.isfinite(bound) and bound > 0):
            raise OptionError("weight_bounds", f"gives {name!r} the bound {bound!r}: a bound is a positive number")
    return tuple((name, float(bound)) for name, bound in pairs)


@dataclass(frozen=True)
class CompileOptions:
    """The options of :func:`inrarch.compile`.

    Parameters
    ----------
    format : str or cores.fixed.Q, optional
        Force one number format (``"q16.16"``) on every edge instead of range analysis.
    width : int, optional
        Give every edge this many bits (over its calibrated range) instead of searching for the
        fewest bits per edge that meet ``tolerance``.
    tolerance : float
        Error the format search allows each output, as a fraction of its largest magnitude; the
        search aims at a quarter of it on calibration inputs (see :mod:`inrarch.formats`).
    margin : float
        Safety factor on calibrated magnitudes.
    domain : (float, float) or sequence of (float, float)
        Range of every input element the formats are derived for, or one range per element of
        a sample (``((0, 1), (-1, 1))`` for inputs ``(t, x)``). Default ``(-1, 1)``.
    clock_mhz : float
        Clock the report's latency is given at, and that the cores' optional pipeline registers
        are chosen for (:meth:`devices.Device.pipelining`; the report's ``"pipelining"``).
    max_parallel : int, optional
        Cap on the multipliers of any one matmul.
    dsp_budget : int, optional
        Estimated DSP slices the design may use. The compiler fills it: it picks the number of
        sample lanes and the multipliers of every matmul that finish the example's batch soonest
        within it (:func:`inrarch.lower.choose_lanes`). By default the device's usable DSPs when
        it states a capacity (a board's device does); the default ``device``, the UltraScale+
        family, names no part and so sets no budget: one lane, every matmul at its fastest pace.
    lanes : int, optional
        Samples the design computes at once, one per lane of every stream inside it, instead of
        the number the budget gives (one without a budget). The design then takes samples in
        whole groups of ``lanes``: a batch is padded up to the next group.
    device : devices.Device
        The FPGA the design is for: its DSP multipliers decide the matmul weight widths and how
        products are split, its memory rule the report's FIFO memories. UltraScale+ by default
        (the Alveo U280's family); ``boards.board_device(board)`` gives a board's part.
    weights : "constant" or "runtime"
        ``"constant"`` builds the model's parameters into the hardware; ``"runtime"`` makes every
        parameter and floating-point buffer a value the design loads through its ``weights`` port,
        so that one design serves every network of the architecture in its weight family
        (:mod:`inrarch.weights`): ``design.weight_image(model)`` gives the words to load.
    weight_examples : sequence of torch.nn.Module or state_dict
        With runtime weights, more networks of the architecture than the compiled one: the family
        holds them all, and the number formats meet ``tolerance`` on each.
    weight_bounds : mapping of str to float
        With runtime weights, the largest magnitude of some parameters and buffers, by their
        ``state_dict`` names; the others get :data:`inrarch.weights.DEFAULT_HEADROOM` times their
        largest magnitude in the examples.
    """

    format: object = None
    width: int = None
    tolerance: float = 1e-3
    margin: float = 2.0
    domain: tuple = DEFAULT_DOMAIN
    clock_mhz: float = 300.0
    max_parallel: int = None
    dsp_budget: int = None
    lanes: int = None
    device: Device = ULTRASCALE_PLUS
    weights: str = "constant"
    weight_examples: tuple = ()
    weight_bounds: tuple = ()

    def __post_init__(self):
        if self.format is not None:
            try:
                object.__setattr__(self, "format", Q.parse(self.format))
            except ValueError:
                raise OptionError("format", f"{self.format!r} is not a number format: expected qI.F, e.g. q16.16 "
                                            "(I integer bits with the sign, F fractional bits)") from None
        _integer("width", self.width, 2)
        if self.format is not None and self.width is not None:
            raise OptionError("format", "and {0} both set the number formats: give one of them", "width")
        if not (_is_number(self.tolerance) and 0 < self.tolerance < 1):
            raise OptionError("tolerance", f"must be between 0 and 1, not {self.tolerance!r}")
        if not (_is_number(self.margin) and self.margin > 0):
            raise OptionError("margin", f"must be positive, not {self.margin!r}")
        object.__setattr__(self, "domain", _domain(self.domain))
        if not (_is_number(self.clock_mhz) and self.clock_mhz > 0):
            raise OptionError("clock_mhz", f"must be positive, not {self.clock_mhz!r}")
        _integer("max_parallel", self.max_parallel, 1)
        _integer("dsp_budget", self.dsp_budget, 0)
        _integer("lanes", self.lanes, 1)
        if not isinstance(self.device, Device):
            raise OptionError("device", f"must be a devices.Device, not {self.device!r}")
        if self.weights not in ("constant", "runtime"):
            raise OptionError("weights", f"must be 'constant' or 'runtime', not {self.weights!r}")
        object.__setattr__(self, "weight_examples", _examples(self.weight_examples))
        object.__setattr__(self, "weight_bounds", _bounds(self.weight_bounds))
        for name in ("weight_examples", "weight_bounds"):
            if getattr(self, name) and self.weights != "runtime":
                raise OptionError(name, "describes the family of runtime weights: add {0}='runtime'", "weights")

    def replace(self, **changes):
        """These options with ``changes``; an unknown name raises TypeError naming it."""
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown compile option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                            f"the options are {', '.join(field.name for field in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    @property
    def budget(self):
        """The DSP budget the compile fills: ``dsp_budget``, else the device's usable DSPs, else None."""
        if self.dsp_budget is not None:
            return self.dsp_budget
        return None if self.device.usable is None else self.device.usable["DSP"]

    @property
    def pipelining(self):
        """The optional pipeline registers of the cores at ``clock_mhz`` on ``device``."""
        return self.device.pipelining(self.clock_mhz)

    def domain_ranges(self, elements):
        """One ``(low, high)`` per input element of a sample of ``elements``."""
        if isinstance(self.domain[0], tuple):
            if len(self.domain) != elements:
                count = len(self.domain)
                raise OptionError("domain", f"gives {count} range{'s' if count > 1 else ''} for samples of {elements} "
                                            "inputs: give one range for all of them, or one per input")
            return self.domain
        return (self.domain,) * elements

    def as_dict(self):
        """The options as JSON values (the device by its family)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["format"] = None if self.format is None else str(self.format)
        values["domain"] = [list(pair) for pair in self.domain] if isinstance(self.domain[0], tuple) \
            else list(self.domain)
        values["device"] = self.device.family
        values["weight_examples"] = len(self.weight_examples)
        values["weight_bounds"] = dict(self.weight_bounds)
        return values
