"""The constraints that place a floorplanned design's cores on their dies in the Vivado/v++ flow.

The compiler assigns every core to a die of a multi-die part (:mod:`inrarch.floorplan`); the board
flow receives that as plain values, each die's pblock and the cells that go into it, and writes:

* ``floorplan.tcl``: finds the kernel's instance in the linked design and adds every cell to the
  platform's pblock of its die's dynamic region (``pblock_dynamic_SLR0`` ...);
* ``floorplan.cfg``: the ``v++ --link --config`` file that runs it before placement.
"""

from pathlib import Path

__all__ = ["write_vitis_constraints", "FLOORPLAN_TCL", "FLOORPLAN_CONFIG"]

FLOORPLAN_TCL = "floorplan.tcl"
FLOORPLAN_CONFIG = "floorplan.cfg"


def write_vitis_constraints(placement, directory, *, kernel="inrarch_kernel"):
    """Write :data:`FLOORPLAN_TCL` and :data:`FLOORPLAN_CONFIG` into ``directory``; return their paths.

    ``placement`` lists ``(die name, pblock, cell paths)`` per die, bottom die first: the instance
    paths inside the kernel (``/``-separated) of every cell that goes to the die (a core, its FIFOs
    and the relay stations placed there). The Tcl finds the kernel's instance in the linked design
    and adds every cell to its die's pblock; ``v++ --config floorplan.cfg`` runs it before
    placement.

    Pblocks rather than one kernel per die joined by AXI streams: the crossing registers are then
    the compiler's own relay stations, whose latency the latency solver counts, so the FIFOs are
    sized for them and the simulated cycles stay the predicted ones; and the host still starts one
    kernel with one set of arguments.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"# inrarch floorplan: every cell of the {kernel} kernel in the pblock of its die",
             f"# ({', '.join(die for die, _, _ in placement)}).",
             f"set kernel [get_cells -hierarchical -filter {{ORIG_REF_NAME == {kernel} || REF_NAME == {kernel}}}]",
             "if {[llength $kernel] == 0} { error \"inrarch floorplan: no instance of " + kernel + " in the design\" }",
             "foreach instance $kernel {"]
    for die, pblock, paths in placement:
        if not paths:
            continue
        lines.append(f"    # {die}: {len(paths)} cells")
        lines.append(f"    add_cells_to_pblock [get_pblocks {pblock}] [get_cells [list \\")
        lines += [f"        $instance/{path} \\" for path in sorted(paths)]
        lines.append("    ]]")
    lines.append("}")
    tcl = directory / FLOORPLAN_TCL
    tcl.write_text("\n".join(lines) + "\n")
    config = directory / FLOORPLAN_CONFIG
    config.write_text("# v++ --link --config floorplan.cfg: the floorplan's pblocks before placement\n"
                      "[vivado]\n"
                      f"prop=run.impl_1.STEPS.OPT_DESIGN.TCL.PRE={tcl.resolve()}\n")
    return tcl, config
