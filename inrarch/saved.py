"""A compiled design saved beside its Verilog, and reopened without compiling again.

:func:`save` writes what a :class:`~inrarch.Design` is made of into a directory (``python -m
inrarch.build`` does it in every build directory): the optimized graph (``design.json``, with its
arrays in ``design.npz``), its number formats, the options that lowered it and, for runtime
weights, the weight family, the weight program and ``weights.bin``, the image of the network it
was compiled from. :func:`load` (:meth:`inrarch.Design.load`) lowers the saved graph again with
the saved choices, which gives the same netlist, and takes the Verilog from ``top.v``: no capture,
no format search, no Verilog conversion. The reopened design computes weight images of other
networks, checks them and simulates like the one compiled.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from devices import Device

from cores.fixed import Q

from . import ir
from .capture.runtime import WeightProgram
from .errors import InrarchError
from .formats import Formats, FormatSearch
from .lower import lower
from .options import CompileOptions
from .floorplan import solve_on_dies
from .weights import WeightFamily

__all__ = ["save", "load", "DESIGN_FILE", "ARRAYS_FILE", "IMAGE_FILE", "VERILOG_FILE"]

DESIGN_FILE = "design.json"
ARRAYS_FILE = "design.npz"
IMAGE_FILE = "weights.bin"
VERILOG_FILE = "top.v"
_VERSION = 1


def save(design, directory):
    """Write ``design`` into ``directory`` (created if missing) so that :func:`load` reopens it.

    Returns the paths written. ``top.v`` is written too unless it is there.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    data = {
        "version": _VERSION,
        "graph": _graph_data(design.graph, arrays),
        "formats": _formats_data(design.graph, design.formats),
        "options": _options_data(design),
        "batch": design.schedule.batch,
        "cycles_predicted": design.schedule.cycles,
        "output_shapes": [list(shape) for shape in design.output_shapes],
        "single_output": design.single_output,
        "output_meanings": design.output_meanings,
        "family": design.family.as_dict() if design.runtime_weights else None,
    }
    written = [directory / DESIGN_FILE, directory / ARRAYS_FILE]
    (directory / DESIGN_FILE).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    with open(directory / ARRAYS_FILE, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    if design.runtime_weights:
        (directory / IMAGE_FILE).write_bytes(design.weight_image())
        written.append(directory / IMAGE_FILE)
    if not (directory / VERILOG_FILE).exists():
        (directory / VERILOG_FILE).write_text(design.verilog())
        written.append(directory / VERILOG_FILE)
    return written


def load(directory):
    """The :class:`~inrarch.Design` saved in ``directory`` (:func:`save`, ``python -m inrarch.build``).

    Raises :class:`~inrarch.InrarchError` in one line when the directory holds no saved design, or
    one that this version of inrarch lowers differently.
    """
    from .design import Design  # noqa: PLC0415 -- the design module imports this one's callers

    directory = Path(directory)
    missing = [name for name in (DESIGN_FILE, ARRAYS_FILE, VERILOG_FILE) if not (directory / name).is_file()]
    if missing:
        raise InrarchError(f"{directory} is not a build directory of a saved design: it has no {missing[0]}")
    data = json.loads((directory / DESIGN_FILE).read_text())
    if data.get("version") != _VERSION:
        raise InrarchError(f"{directory / DESIGN_FILE} was saved by another version of inrarch")
    with np.load(directory / ARRAYS_FILE) as arrays:
        graph = _graph(data["graph"], arrays)
    formats = _formats(graph, data["formats"])
    options = _options(data["options"])
    netlist = lower(graph, formats, device=options.device, dsp_budget=options.budget,
                    max_parallel=options.max_parallel, batch=data["batch"], lanes=options.lanes,
                    clock_mhz=options.clock_mhz)
    schedule = solve_on_dies(netlist, options.device, data["batch"])
    if schedule.cycles != data["cycles_predicted"]:
        raise InrarchError(f"{directory} lowers to {schedule.cycles} cycles here, not the "
                           f"{data['cycles_predicted']} it was built with: rebuild it with this version of inrarch")
    family = WeightFamily.from_dict(data["family"]) if data["family"] else None
    design = Design(graph, netlist, schedule, [tuple(shape) for shape in data["output_shapes"]],
                    data["single_output"], options, {}, output_meanings=data["output_meanings"], family=family)
    design.adopt_verilog((directory / VERILOG_FILE).read_text())
    if family is not None:
        image = directory / IMAGE_FILE
        if not image.is_file():
            raise InrarchError(f"{directory} has runtime weights but no {IMAGE_FILE}")
        design.adopt_image(image.read_bytes())
    return design


def _graph_data(graph, arrays):
    index = {node: k for k, node in enumerate(graph.nodes)}
    tensors = {}

    def tensor(weight):
        if id(weight) not in tensors:
            key = f"t{len(tensors)}"
            arrays[key] = np.asarray(weight.matrix, dtype=np.float64)
            tensors[id(weight)] = {"key": key, "name": weight.name, "runtime": weight.runtime,
                                   "fingerprint": weight.fingerprint}
        return {"tensor": tensors[id(weight)]}

    def attribute(value):
        if isinstance(value, ir.Weight):
            return tensor(value)
        if isinstance(value, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {"array": key}
        if isinstance(value, tuple):
            return {"tuple": [attribute(item) for item in value]}
        if isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot save a node attribute of type {type(value).__name__}")

    nodes = []
    for node in graph.nodes:
        meta = {}
        if "bound" in node.meta:
            meta["bound"] = node.meta["bound"]
        if "weight_pair" in node.meta:
            meta["weight_pair"] = [index[n] for n in node.meta["weight_pair"]]
        nodes.append({"op": node.op, "name": node.name, "shape": list(node.shape), "source": node.source,
                      "inputs": [index[source] for source in node.inputs],
                      "attrs": {key: attribute(value) for key, value in node.attrs.items()}, "meta": meta})
    return {"nodes": nodes, "input": index[graph.input], "outputs": [index[node] for node in graph.outputs],
            "weights": [tensor(weight)["tensor"] for weight in graph.weights],
            "program": graph.program.as_dict() if graph.program is not None else None}


def _graph(data, arrays):
    tensors = {}

    def tensor(info):
        if info["key"] not in tensors:
            tensors[info["key"]] = ir.Weight(info["name"], arrays[info["key"]], runtime=info["runtime"],
                                             fingerprint=info["fingerprint"])
        return tensors[info["key"]]

    def attribute(value):
        if isinstance(value, dict):
            (kind, item), = value.items()
            if kind == "tensor":
                return tensor(item)
            if kind == "array":
                return arrays[item]
            return tuple(attribute(element) for element in item)
        return value

    nodes = []
    for entry in data["nodes"]:
        nodes.append(ir.Node(entry["op"], [nodes[k] for k in entry["inputs"]], tuple(entry["shape"]),
                             {key: attribute(value) for key, value in entry["attrs"].items()}, name=entry["name"],
                             source=entry["source"]))
    for node, entry in zip(nodes, data["nodes"]):
        if "bound" in entry["meta"]:
            node.meta["bound"] = entry["meta"]["bound"]
        if "weight_pair" in entry["meta"]:
            node.meta["weight_pair"] = tuple(nodes[k] for k in entry["meta"]["weight_pair"])
    weights = [tensor(info) for info in data["weights"]]
    program = WeightProgram.from_dict(data["program"]) if data["program"] is not None else None
    return ir.Graph(nodes[data["input"]], [nodes[k] for k in data["outputs"]], nodes, weights, program)


def _formats_data(graph, formats):
    return {"formats": {node.name: str(formats[node]) for node in graph.nodes},
            "weight_widths": {node.name: formats.weight_width(node) for node in graph.nodes
                              if "weight" in node.attrs or node.op == "mul_const"},
            "search": formats.search.as_dict() if formats.search is not None else None}


def _formats(graph, data):
    by_name = {node.name: node for node in graph.nodes}
    search = FormatSearch(**data["search"]) if data["search"] is not None else None
    return Formats({by_name[name]: Q.parse(text) for name, text in data["formats"].items()},
                   {by_name[name]: bits for name, bits in data["weight_widths"].items()}, search)


def _options_data(design):
    options = design.options
    values = options.as_dict()
    values.update(dsp_budget=options.budget, lanes=design.netlist.lanes, weight_examples=None,
                  device=dataclasses.asdict(options.device))
    return values


def _options(data):
    values = dict(data)
    values["device"] = Device.from_dict(values.pop("device"))
    values.pop("weight_examples")
    if isinstance(values["domain"][0], list):
        values["domain"] = tuple(tuple(pair) for pair in values["domain"])
    else:
        values["domain"] = tuple(values["domain"])
    values["weight_bounds"] = values["weight_bounds"] or ()
    return CompileOptions(**values)
