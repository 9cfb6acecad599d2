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


def write_vitis_constraints(placement, directory, *, kernel="inrarch_kernel", design_instance="dataflow",
                            installed=None):
    """Write :data:`FLOORPLAN_TCL` and :data:`FLOORPLAN_CONFIG` into ``directory``; return their paths.

    ``placement`` lists ``(die name, pblock, cells, memory)`` per die, bottom die first: the
    instance names inside the design (module ``top``, instance ``design_instance`` of the kernel)
    of every core, fork, relay station and FIFO that goes to the die, and whether the card's memory
    is attached to it. The kernel's own cells, its memory ports and control registers, go to the
    memory die. The Tcl finds the kernel's instance in the linked design and adds every cell to
    its die's pblock; ``v++ --config floorplan.cfg`` runs it before placement, from ``installed``
    (the directory the files will be in when ``v++`` runs, by default ``directory``): Vivado runs
    the hook from its own run directory, so the configuration names the Tcl by its absolute path.

    Pblocks rather than one kernel per die joined by AXI streams: the crossing registers are then
    the compiler's own relay stations, whose latency the latency solver counts, so the FIFOs are
    sized for them and the simulated cycles stay the predicted ones; and the host still starts one
    kernel with one set of arguments.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"# inrarch floorplan: every cell of the {kernel} kernel in the pblock of its die",
             f"# ({', '.join(die for die, _, _, _ in placement)}).",
             f"set kernel [get_cells -hierarchical -filter {{ORIG_REF_NAME == {kernel} || REF_NAME == {kernel}}}]",
             "if {[llength $kernel] == 0} { error \"inrarch floorplan: no instance of " + kernel + " in the design\" }",
             "foreach instance $kernel {"]
    for die, pblock, cells, memory in placement:
        if memory:
            lines.append(f"    # {die}: the kernel's memory ports and control registers")
            lines.append(f"    add_cells_to_pblock [get_pblocks {pblock}] "
                         f"[get_cells -filter \"NAME != $instance/{design_instance}\" $instance/*]")
        if not cells:
            continue
        lines.append(f"    # {die}: {len(cells)} cells of the design")
        lines.append(f"    add_cells_to_pblock [get_pblocks {pblock}] [get_cells [list \\")
        lines += [f"        $instance/{design_instance}/{cell} \\" for cell in sorted(cells)]
        lines.append("    ]]")
    lines.append("}")
    tcl = directory / FLOORPLAN_TCL
    tcl.write_text("\n".join(lines) + "\n")
    config = directory / FLOORPLAN_CONFIG
    config.write_text("# v++ --link --config floorplan.cfg: the floorplan's pblocks before placement\n"
                      "[vivado]\n"
                      f"prop=run.impl_1.STEPS.OPT_DESIGN.TCL.PRE={Path(installed or directory).resolve() / tcl.name}\n")
    return tcl, config
