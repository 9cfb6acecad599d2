"""Run an inrarch Vitis kernel on an Alveo card through pyxrt, from the build's report.json alone.

A build writes this file into ``OUT/vitis_kernel/host.py``. It needs numpy and XRT's pyxrt, not
inrarch: it reads the kernel's buffers, registers, number formats and shapes from ``report.json``
(``../report.json`` beside it by default), quantizes the samples into the input buffer, starts the
kernel, reads every output back as float64 arrays in the documented shapes, and checks the status
register for an overflow.

Command line, on the card's host::

    python host.py inrarch.xclbin samples.npy --out outputs.npz

``samples.npy`` holds a float array ``(batch, *input shape)``; ``outputs.npz`` receives one array
per output (``y0``, ``y1``, ...), each ``(batch, *output shape)``. From Python::

    from host import Kernel
    kernel = Kernel("inrarch.xclbin")            # the card's first device
    outputs = kernel.run(samples)                # {"y0": array, "y1": array, ...}

A kernel with runtime weights (a build with ``--runtime-weights``) also has a weights buffer: the
first run loads ``weights.bin`` beside ``report.json`` (``--weights PATH`` or ``Kernel(...,
weights=PATH)`` for another image, such as one ``python -m inrarch.build --weights`` wrote), and
the runs after it keep those weights (``reload_weights`` = 0) until ``kernel.load_weights(image)``
gives another network, which the next run loads.

:func:`pack` and :func:`unpack` are the buffer layout on their own (tests/test_vitis_kernel.py
checks them against the kernel in simulation). A saturated value raises :class:`KernelOverflow`,
which carries the outputs and names the first core that saturated.
"""

import argparse
import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Buffer", "WeightsBuffer", "Layout", "Kernel", "KernelOverflow", "pack", "unpack", "overflow_message", "main"]

#: The report a build writes beside its vitis_kernel/ directory.
DEFAULT_REPORT = Path(__file__).resolve().parent.parent / "report.json"

_FORMAT = re.compile(r"^q(-?\d+)\.(-?\d+)$")


@dataclass(frozen=True)
class Buffer:
    """One buffer argument of the kernel: where its address goes and how its elements are stored."""

    name: str
    index: int
    offset: int
    direction: str
    element_bytes: int
    elements_per_sample: int
    int_bits: int
    frac_bits: int
    shape: tuple
    meaning: str

    @property
    def dtype(self):
        """Little-endian signed integers of ``element_bytes``."""
        return np.dtype(f"<i{self.element_bytes}")

    def nbytes(self, batch):
        return batch * self.elements_per_sample * self.element_bytes


@dataclass(frozen=True)
class WeightsBuffer:
    """The weights buffer of a kernel with runtime weights, and its ``reload_weights`` register."""

    index: int
    offset: int
    nbytes: int
    reload_index: int
    reload_offset: int


@dataclass(frozen=True)
class Layout:
    """The kernel as ``report.json`` describes it; ``weights`` is None for a kernel whose weights are
    constants of its hardware."""

    kernel: str
    buffers: tuple
    batch_offset: int
    batch_index: int
    status_offset: int
    cores: tuple
    domain: list
    weights: WeightsBuffer = None

    @classmethod
    def from_report(cls, report):
        """The layout of ``report`` (a dict, or the path of a report.json)."""
        if not isinstance(report, dict):
            report = json.loads(Path(report).read_text())
        if "vitis_kernel" not in report:
            raise ValueError(f"the report is of a build for {report.get('board')!r}, which has no Vitis kernel")
        kernel = report["vitis_kernel"]
        streams = {report["input"]["port"]: {**report["input"], "meaning": "input samples"}}
        streams.update({output["port"]: output for output in report["outputs"]})
        buffers, scalars = [], {}
        for index, argument in enumerate(kernel["arguments"]):
            if "format" not in argument:  # batch, and the weights buffer and reload_weights
                scalars[argument["name"]] = (argument, index)
                continue
            int_bits, frac_bits = (int(part) for part in _FORMAT.match(argument["format"]).groups())
            # A buffer that is not a stream of the design says its shape and meaning itself.
            stream = streams.get(argument["name"], argument)
            buffers.append(Buffer(argument["name"], index, argument["offset"], argument["direction"],
                                  argument["element_bytes"], argument["elements_per_sample"], int_bits, frac_bits,
                                  tuple(stream.get("shape", [argument["elements_per_sample"]])),
                                  stream.get("meaning", argument["name"])))
        weights = None
        if "weights" in scalars:
            (image, index), (reload, reload_index) = scalars["weights"], scalars["reload_weights"]
            weights = WeightsBuffer(index, image["offset"], image["image_bytes"], reload_index, reload["offset"])
        batch, batch_index = scalars["batch"]
        return cls(kernel["name"], tuple(buffers), batch["offset"], batch_index, kernel["status_offset"],
                   tuple(kernel["cores"]), report["input"]["domain"], weights)

    def buffer(self, name):
        return next(buffer for buffer in self.buffers if buffer.name == name)

    @property
    def outputs(self):
        return [buffer for buffer in self.buffers if buffer.direction == "out"]

    @property
    def inputs(self):
        return [buffer for buffer in self.buffers if buffer.direction == "in"]


def pack(buffer, values):
    """The bytes of ``buffer`` holding ``values`` (shape ``(batch, *buffer.shape)``), each rounded to
    the nearest step of its format (half up) and saturated to its range, as the kernel reads them."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 1 or (len(values) and values[0].size != buffer.elements_per_sample):
        raise ValueError(f"{buffer.name}: samples of shape {values.shape[1:]}, not {buffer.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{buffer.name}: the samples hold NaN or infinite values")
    raw = np.floor(values.reshape(-1) * 2.0 ** buffer.frac_bits + 0.5)
    width = buffer.int_bits + buffer.frac_bits
    raw = np.clip(raw, -(2.0 ** (width - 1)), 2.0 ** (width - 1) - 1)
    return raw.astype(buffer.dtype).tobytes()


def unpack(buffer, data, batch):
    """``batch`` samples of ``buffer`` from its bytes ``data``, as float64 ``(batch, *buffer.shape)``."""
    raw = np.frombuffer(bytes(data[:buffer.nbytes(batch)]), dtype=buffer.dtype)
    return (raw.astype(np.float64) * 2.0 ** -buffer.frac_bits).reshape(batch, *buffer.shape)


def overflow_message(layout, status):
    """What the status register ``status`` says: None, or which core saturated a value first."""
    if not status & 1:
        return None
    core = status >> 8
    named = layout.cores[core - 1] if 0 < core <= len(layout.cores) else "a core the report does not list"
    return (f"the kernel saturated a value its format cannot hold, first in {named}: the outputs are wrong; "
            "rebuild with wider formats (--bits, or a --format with more integer bits) or keep the samples inside "
            "the domain")


class KernelOverflow(RuntimeError):
    """The kernel saturated a value; ``outputs`` holds what it wrote all the same."""

    def __init__(self, message, outputs):
        super().__init__(message)
        self.outputs = outputs


class Kernel:
    """The kernel of ``xclbin`` on device ``device``, laid out as ``report`` says.

    ``pyxrt`` is XRT's Python module (imported when not given). A kernel with runtime weights
    first loads ``weights`` (an image's bytes or its path; by default ``weights.bin`` beside the
    report), in its first run.
    """

    def __init__(self, xclbin, report=DEFAULT_REPORT, device=0, pyxrt=None, weights=None):
        if pyxrt is None:
            import pyxrt
        self.pyxrt = pyxrt
        self.layout = Layout.from_report(report)
        self.device = pyxrt.device(device)
        uuid = self.device.load_xclbin(pyxrt.xclbin(str(xclbin)))
        # Exclusive access: the status register is read after each run.
        self.kernel = pyxrt.kernel(self.device, uuid, self.layout.kernel, pyxrt.kernel.cu_access_mode.exclusive)
        self._weights, self._reload = None, False
        if self.layout.weights is not None:
            if weights is None and isinstance(report, dict):
                raise ValueError("the kernel loads runtime weights: give weights= (an image's bytes or its path)")
            self.load_weights(Path(report).parent / "weights.bin" if weights is None else weights)

    def load_weights(self, image):
        """Put the weight image ``image`` (bytes, or the path of ``weights.bin`` or of an image
        ``python -m inrarch.build --weights`` wrote) in the weights buffer: the next run loads it
        before its first sample, the runs after it keep it."""
        weights = self.layout.weights
        if weights is None:
            raise ValueError("the kernel's weights are constants of its hardware: it takes no weight image")
        data = Path(image).read_bytes() if isinstance(image, (str, Path)) else bytes(image)
        if len(data) != weights.nbytes:
            raise ValueError(f"the weight image has {len(data)} bytes; the kernel takes {weights.nbytes}")
        pyxrt = self.pyxrt
        self._weights = pyxrt.bo(self.device, len(data), pyxrt.bo.normal, self.kernel.group_id(weights.index))
        self._weights.write(data, 0)
        self._weights.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, len(data), 0)
        self._reload = True

    def run(self, x, **inputs):
        """Run the kernel on the samples ``x``; returns ``{output name: float64 array}``.

        ``inputs`` fills the kernel's other input buffers, by name, when it has any.
        """
        pyxrt, layout = self.pyxrt, self.layout
        x = np.asarray(x, dtype=np.float64)
        batch = len(x)
        if batch < 1:
            raise ValueError("no samples to run")
        _warn_outside(layout, x)
        arrays = {"x": x, **inputs}
        missing = [buffer.name for buffer in layout.inputs if buffer.name not in arrays]
        if missing:
            raise ValueError(f"no values for the input buffers {', '.join(missing)}")
        objects = {}
        for buffer in layout.buffers:
            objects[buffer.name] = pyxrt.bo(self.device, buffer.nbytes(batch), pyxrt.bo.normal,
                                            self.kernel.group_id(buffer.index))
            if buffer.direction == "in":
                data = pack(buffer, arrays[buffer.name])
                objects[buffer.name].write(data, 0)
                objects[buffer.name].sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, len(data), 0)
        arguments = {buffer.index: objects[buffer.name] for buffer in layout.buffers}
        arguments[layout.batch_index] = batch
        if layout.weights is not None:
            arguments[layout.weights.index] = self._weights
            arguments[layout.weights.reload_index] = int(self._reload)
        self.kernel(*(arguments[index] for index in sorted(arguments))).wait()
        self._reload = False
        status = self.kernel.read_register(layout.status_offset)
        outputs = {}
        for buffer in layout.outputs:
            objects[buffer.name].sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, buffer.nbytes(batch), 0)
            data = np.asarray(objects[buffer.name].read(buffer.nbytes(batch), 0)).tobytes()
            outputs[buffer.name] = unpack(buffer, data, batch)
        problem = overflow_message(layout, status)
        if problem is not None:
            raise KernelOverflow(problem, outputs)
        return outputs


def _warn_outside(layout, x):
    ranges = layout.domain if isinstance(layout.domain[0], list) else [layout.domain] * x[0].size
    flat = x.reshape(len(x), -1)
    low, high = np.array(ranges).T
    if np.any(flat < low) or np.any(flat > high):
        warnings.warn(f"samples span [{flat.min():g}, {flat.max():g}], outside the domain {layout.domain} the "
                      "number formats were derived for: results may saturate", stacklevel=3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xclbin", help="the linked kernel (v++ -l ... -o inrarch.xclbin)")
    parser.add_argument("samples", help="a .npy file of float samples, shape (batch, *input shape)")
    parser.add_argument("--report", default=str(DEFAULT_REPORT), help="the build's report.json")
    parser.add_argument("--out", default="outputs.npz", help="where the outputs go (default: outputs.npz)")
    parser.add_argument("--device", type=int, default=0, help="XRT device index (default: 0)")
    parser.add_argument("--weights", help="for a kernel with runtime weights: the weight image to load "
                                          "(default: weights.bin beside the report)")
    args = parser.parse_args(argv)
    kernel = Kernel(args.xclbin, args.report, args.device, weights=args.weights)
    try:
        outputs, problem = kernel.run(np.load(args.samples)), None
    except KernelOverflow as overflow:
        outputs, problem = overflow.outputs, str(overflow)
    np.savez(args.out, **outputs)
    for buffer in kernel.layout.outputs:
        print(f"{buffer.name}: {buffer.meaning}, {outputs[buffer.name].shape}")
    print(f"outputs: {args.out}")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
