"""Checking a simulated design: every way a Verilator run can be wrong, as one line each.

A run is right when each output is within ``tolerance × max|ref|`` of float64 torch
(:func:`inrarch.reference`), the cycles equal the latency solver's prediction, no core
saturated a value (the sticky ``overflow`` flag), and the run finished: the watchdog did not
stop it. :func:`check_simulation` checks a finished run; :func:`simulate_and_check` also runs
the simulation and turns a run the watchdog stopped into a problem naming the blocked FIFOs.
``python -m inrarch.build --simulate`` fails on any problem they report.
"""

import warnings
from dataclasses import dataclass

from .emulate import relative_errors
from .evaluation import reference

__all__ = ["Verification", "check_simulation", "simulate_and_check"]


def check_simulation(design, result, references, tolerance):
    """The problems of a finished Verilator run of ``design``, one line each; empty when it is right.

    Parameters
    ----------
    design : inrarch.Design
        The design that ran.
    result : inrarch.SimulationResult
        What :meth:`inrarch.Design.simulate` returned.
    references : list
        The float64 outputs it must match, ``inrarch.reference(fn, x)`` for the inputs ``x`` it ran on.
    tolerance : float
        Error allowed per output, as a fraction of the output's largest magnitude
        (:func:`inrarch.emulate.relative_errors`).

    Returns
    -------
    list of str
        An output beyond the tolerance (each one named by its port), simulated cycles that differ
        from the predicted ones (of the batch, and of the weight load before it), and a set
        overflow flag (naming the core that saturated).
    """
    problems = []
    errors = relative_errors(result.outputs, references)
    for stream, error in zip(design.netlist.outputs, errors):
        if not error <= tolerance:
            problems.append(f"output {stream.port} is off by {error:.2e} × max|ref|, over the tolerance "
                            f"{tolerance:g}")
    batch = len(result.outputs[0])
    predicted = design.schedule.cycles if batch == design.schedule.batch else design.predict_cycles(batch)
    if result.cycles != predicted:
        problems.append(f"{result.cycles} cycles simulated, {predicted} predicted")
    if result.load_cycles is not None and result.load_cycles != design.report["weight_load_cycles"]:
        problems.append(f"the weight load took {result.load_cycles} cycles, {design.report['weight_load_cycles']} "
                        "predicted")
    if result.overflow:
        problems.append(_overflow_problem(design, result))
    return problems


def _overflow_problem(design, result):
    if result.overflow_core is None:
        return "the overflow flag is set, but no core said it saturated"
    fmt = next(i.format for i in design.netlist.instances if i.name == result.overflow_core)
    return (f"overflow: the {result.overflow_op} core {result.overflow_core} saturated values beyond the "
            f"±{fmt.max_value:g} of its format {fmt}")


@dataclass
class Verification:
    """What :func:`simulate_and_check` found.

    Attributes
    ----------
    result : inrarch.SimulationResult or None
        The run; None when the watchdog stopped it.
    errors : list of float or None
        Per output, ``max |output - reference| / max |reference|``; None when the run did not finish.
    problems : list of str
        One line per problem (see :func:`check_simulation`); empty when the design is right.
    """

    result: object
    errors: list
    problems: list


def simulate_and_check(design, fn, x, *, tolerance, weights=None, **simulate_options):
    """Run ``design`` on the samples ``x`` in Verilator and check it against float64 ``fn``.

    A run the watchdog stops (:class:`sim.Deadlock`) is a problem that names the full FIFOs, not
    an exception; so is a set overflow flag, reported here instead of warned about. A design with
    runtime weights first loads ``weights`` (by default the network it was compiled from), ``fn``
    is evaluated with them, and a load that takes other cycles than predicted is a problem too.

    Parameters
    ----------
    design : inrarch.Design
    fn : callable
        The function ``design`` was compiled from; it is evaluated with :func:`inrarch.reference`.
    x : torch.Tensor or array
        Samples, shape ``(batch, *in)``.
    tolerance : float
        See :func:`check_simulation`.
    weights : torch.nn.Module or state_dict, optional
        For a design with runtime weights: the network to load (:meth:`inrarch.Design.weight_image`).
    **simulate_options
        Passed to :meth:`inrarch.Design.simulate` (``valid_prob``, ``watchdog``, ...).

    Returns
    -------
    Verification
    """
    from sim import Deadlock

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="overflow: ", category=RuntimeWarning)
            result = design.simulate(x, weights=weights, **simulate_options)
    except Deadlock as error:
        return Verification(None, None, [f"the watchdog stopped the simulation: {'; '.join(str(error).splitlines())}"])
    references = reference(fn, x, weights=weights)
    return Verification(result, relative_errors(result.outputs, references),
                        check_simulation(design, result, references, tolerance))
