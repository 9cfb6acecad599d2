"""The Vitis RTL kernel in Verilator: AXI memories (cocotbext-axi AxiRam), AXI-Lite control, compared with torch.

The pytest side builds a tiny SIREN derivative design for the U280 (``inrarch.build.build``) and
runs the cocotb test ``kernel_runs`` (below, in the simulator's Python) on its kernel Verilog with a
JSON job: the buffers' addresses and the input bytes of each run, packed by the generated
``vitis_kernel/host.py`` from ``report.json`` alone, whose outputs host.py also unpacks; host.py's
pyxrt sequence then runs against a stand-in for pyxrt that replays the simulated runs. The bench plays the host: it fills memory, programs the
registers, starts the kernel, waits for the interrupt, checks ap_done/ap_idle and returns the
output bytes. Runs in one simulation: batch 4, then batch 3 (an odd element count, so the
last word of ``y0`` is written with half its strobes) with every AXI channel of the memories
randomly stalled, with buffers placed across 4 KiB pages. The design computes one sample at a
time, then two (its lanes): batch 3 then fills its last group with a zero sample that the kernel
adds and whose outputs it drops. The design with runtime weights runs four times: network A
loaded from the weights buffer (``reload_weights`` = 1), A again without reloading, twice, the
second time stalled, then network B.
"""

import itertools
import json
import os
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge

JOB_ENV = "INRARCH_VITIS_JOB"
SENTINEL = 0xA5
MEMORY_BYTES = 1 << 17
# Buffers straddle 4 KiB boundaries so bursts must be split there.
ADDRESSES = {"x": 0x0FF0, "y0": 0x1FE8, "y1": 0x2FC0, "weights": 0x3F80}
# (batch, network loaded first: 0 or 1, or None to keep the weights, stalled) of each run.
RUNS = ((4, None, False), (3, None, True))
RUNTIME_RUNS = ((4, 0, False), (4, None, False), (3, None, True), (4, 1, False))


@cocotb.test()
async def kernel_runs(dut):
    from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    Clock(dut.ap_clk, 4, unit="ns").start()
    control = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                            reset_active_level=False)
    memories = {name: AxiRam(AxiBus.from_prefix(dut, f"m_axi_{name}"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False, size=MEMORY_BYTES) for name in job["offsets"]}
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 8)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)

    assert await control.read_dword(0x00) & 0x4, "kernel not idle after reset"
    await control.write_dword(0x04, 1)  # GIE
    await control.write_dword(0x08, 1)  # IER: ap_done
    results = []
    for run in job["runs"]:
        stall = random.Random(7)
        for memory in memories.values():
            for channel in (memory.write_if.aw_channel, memory.write_if.w_channel, memory.write_if.b_channel,
                            memory.read_if.ar_channel, memory.read_if.r_channel):
                if run["stalls"]:
                    channel.set_pause_generator(itertools.cycle([stall.random() < 0.4 for _ in range(97)]))
                else:
                    channel.clear_pause_generator()
                    channel.pause = False
        for name, memory in memories.items():
            address, data = run["addresses"][name], bytes.fromhex(run["inputs"].get(name, ""))
            memory.write(address - 64, bytes([SENTINEL]) * (len(data) + 64 + run["output_bytes"].get(name, 0) + 64))
            memory.write(address, data)
        for name, offset in job["offsets"].items():
            await control.write_dword(offset, run["addresses"][name] & 0xFFFF_FFFF)
            await control.write_dword(offset + 4, run["addresses"][name] >> 32)
        await control.write_dword(job["batch_offset"], run["batch"])
        if job["reload_offset"] is not None:
            await control.write_dword(job["reload_offset"], int(run["reload"]))

        await control.write_dword(0x00, 1)  # ap_start
        started = cocotb.utils.get_sim_time(unit="ns")
        finished = await First(RisingEdge(dut.interrupt), ClockCycles(dut.ap_clk, 20000))
        assert finished is not None and int(dut.interrupt.value) == 1, "no interrupt within 20000 cycles"
        cycles = int((cocotb.utils.get_sim_time(unit="ns") - started) // 4)
        control_word = await control.read_dword(0x00)
        assert control_word & 0x2, f"interrupt without ap_done (control {control_word:#x})"
        assert control_word & 0x4, f"ap_idle low after the run (control {control_word:#x})"
        assert not await control.read_dword(0x00) & 0x2, "ap_done did not clear on read"
        assert await control.read_dword(0x0C) == 1, "ISR does not show ap_done"
        await control.write_dword(0x0C, 1)  # toggle ap_done off
        assert not int(dut.interrupt.value), "interrupt stays high after clearing ISR"

        outputs, guards = {}, {}
        for name, nbytes in run["output_bytes"].items():
            address = run["addresses"][name]
            outputs[name] = memories[name].read(address, nbytes).hex()
            guards[name] = (memories[name].read(address - 64, 64) + memories[name].read(address + nbytes, 64)).hex()
        status = await control.read_dword(job["status_offset"])
        results.append({"outputs": outputs, "guards": guards, "cycles": cycles, "status": status})
    Path(job["result"]).write_text(json.dumps(results))


def import_host(path):
    """The generated ``vitis_kernel/host.py`` as a module, as a user's ``from host import Kernel`` gets it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"host_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=[(1, False), (2, False), (2, True)],
                ids=["1 lane", "2 lanes", "runtime weights"])
def kernel_run(request, tmp_path_factory):
    """The build's kernel simulated on buffers that the generated host.py packed from report.json."""
    import inrarch
    from inrarch.build import BuildConfig, build
    from sim.verilator import build_model, run_test

    lanes, runtime = request.param
    out = tmp_path_factory.mktemp("vitis") / "build"
    result = build(BuildConfig(width=8, depth=1, batch=RUNS[0][0], lanes=lanes, runtime_weights=runtime, out=out))
    design = result.design
    directory = out / "vitis_kernel"
    host = import_host(directory / "host.py")
    layout = host.Layout.from_report(out / "report.json")
    networks = [inrarch.models.siren(2, 8, 1, 3, 30.0, seed) for seed in (0, 1)]
    fn = inrarch.derivatives(networks[0], 1)
    addressed = [b.name for b in layout.buffers] + (["weights"] if runtime else [])

    rng = np.random.default_rng(5)
    runs, samples, loaded = [], [], []
    for run_index, (batch, network, stalls) in enumerate(RUNTIME_RUNS if runtime else RUNS):
        x = rng.uniform(-1.0, 1.0, size=(batch, 2))
        samples.append(x)
        inputs = {"x": host.pack(layout.buffer("x"), x).hex()}
        if runtime and network is not None:
            inputs["weights"] = design.weight_image(networks[network]).hex()
        loaded.append(networks[network] if network is not None else loaded[-1] if loaded else None)
        runs.append({
            "batch": batch,
            "stalls": stalls,
            "reload": runtime and network is not None,
            "addresses": {name: ADDRESSES[name] + 0x8000 * run_index for name in addressed},
            "inputs": inputs,
            "output_bytes": {b.name: b.nbytes(batch) for b in layout.outputs},
        })
    result_path = directory / "result.json"
    job_path = directory / "job.json"
    job_path.write_text(json.dumps({
        "runs": runs,
        "offsets": {**{b.name: b.offset for b in layout.buffers},
                    **({"weights": layout.weights.offset} if runtime else {})},
        "batch_offset": layout.batch_offset,
        "reload_offset": layout.weights.reload_offset if runtime else None,
        "status_offset": layout.status_offset,
        "result": str(result_path),
    }))

    model_build = build_model((directory / "inrarch_kernel.v").read_text(), "inrarch_kernel")
    here = str(Path(__file__).resolve().parent)
    run_test(model_build, "test_vitis_kernel", testcase="kernel_runs", test_dir=directory, env={
        JOB_ENV: str(job_path),
        "PYTHONPATH": os.pathsep.join([here, str(Path(here).parent), *sys.path]),
    })
    assert result_path.is_file(), (directory / "sim.log").read_text()[-4000:]
    files = {"verilog": directory / "inrarch_kernel.v", "kernel_xml": directory / "kernel.xml",
             "package_xo": directory / "package_xo.tcl", "connectivity": directory / "connectivity.cfg"}
    return SimpleNamespace(design=design, fn=fn, host=host, layout=layout, samples=samples, runs=runs,
                           loaded=loaded, networks=networks, results=json.loads(result_path.read_text()),
                           files=files, out=out)


def test_kernel_outputs_unpacked_by_host_py_match_torch(kernel_run):
    import inrarch

    run = kernel_run
    host, layout = run.host, run.layout
    for x, weights, result in zip(run.samples, run.loaded, run.results):
        reference = [r.numpy() for r in inrarch.reference(run.fn, x, weights=weights)]
        for buffer, ref in zip(layout.outputs, reference):
            got = host.unpack(buffer, bytes.fromhex(result["outputs"][buffer.name]), len(x))
            assert got.shape == ref.shape == (len(x), *buffer.shape)
            error = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
            print(f"batch {len(x)} {buffer.name}: error {error:.2e} of max|ref|, {result['cycles']} cycles")
            assert error <= 1e-3, f"{buffer.name} off by {error:.2e} of max|ref|"
        assert host.overflow_message(layout, result["status"]) is None, "the design reported an overflow"


def test_host_py_packs_the_inputs_as_the_design_quantizes_them(kernel_run):
    host = kernel_run.host
    for x in kernel_run.samples:
        packed = np.frombuffer(host.pack(kernel_run.layout.buffer("x"), x), dtype="<i4")
        assert packed.tolist() == [int(v) for v in kernel_run.design.input_format.quantize(x.reshape(-1))]
    wide = host.Buffer("w", 0, 0x10, "in", 8, 2, 20, 20, (2,), "test")  # q20.20: over 32 bits, int64 elements
    assert np.frombuffer(host.pack(wide, [[1e6, -3.25]]), dtype="<i8").tolist() == [(1 << 39) - 1, -13 << 18]


class FakeXrt:
    """pyxrt's objects, enough for host.py, with a kernel that replays the simulated runs: given the
    input buffer's bytes, it writes the outputs the simulation wrote for them and shows its status."""

    def __init__(self, layout, runs, results):
        self.layout = layout
        self.replies = {run["inputs"]["x"]: (run, result) for run, result in zip(runs, results)}
        self.calls = []
        fake = self

        class Device:
            def __init__(self, index):
                self.index = index

            def load_xclbin(self, xclbin):
                return f"uuid of {xclbin.path}"

        class Xclbin:
            def __init__(self, path):
                self.path = path

        class Bo:
            normal = "normal"

            def __init__(self, device, size, flags, group):
                self.data, self.group, self.syncs = bytearray(size), group, []

            def write(self, data, offset):
                self.data[offset:offset + len(data)] = bytes(data)

            def sync(self, direction, size, offset):
                self.syncs.append((direction, size, offset))

            def read(self, size, offset):
                return np.frombuffer(bytes(self.data[offset:offset + size]), dtype=np.int8)

        class Kernel:
            class cu_access_mode:
                exclusive = "exclusive"

            def __init__(self, device, uuid, name, mode):
                assert name == layout.kernel and mode == "exclusive"
                self.status = 0

            def group_id(self, index):
                return index

            def __call__(self, *arguments):
                fake.calls.append(arguments)
                assert arguments[layout.batch_index] * layout.buffer("x").nbytes(1) == len(arguments[0].data)
                buffers = {b.name: arguments[b.index] for b in layout.buffers}
                assert all(bo.group == b.index for b, bo in zip(layout.buffers, buffers.values()))
                assert buffers["x"].syncs == [("to device", len(buffers["x"].data), 0)]
                run, reply = fake.replies[bytes(buffers["x"].data).hex()]
                if layout.weights is not None:
                    weights = arguments[layout.weights.index]
                    assert weights.group == layout.weights.index and len(weights.data) == layout.weights.nbytes
                    assert arguments[layout.weights.reload_index] == int(run["reload"])
                    if run["reload"]:
                        assert bytes(weights.data).hex() == run["inputs"]["weights"]
                for name, data in reply["outputs"].items():
                    buffers[name].data[:] = bytes.fromhex(data)
                self.status = reply["status"]
                return type("Run", (), {"wait": lambda run: "completed"})()

            def read_register(self, offset):
                assert offset == layout.status_offset
                return self.status

        self.device, self.xclbin, self.bo, self.kernel = Device, Xclbin, Bo, Kernel
        self.xclBOSyncDirection = type("Sync", (), {"XCL_BO_SYNC_BO_TO_DEVICE": "to device",
                                                    "XCL_BO_SYNC_BO_FROM_DEVICE": "from device"})


def test_host_py_runs_the_kernel_through_pyxrt_from_report_json_alone(kernel_run, tmp_path, monkeypatch, capsys):
    import inrarch

    host, layout, samples, out = kernel_run.host, kernel_run.layout, kernel_run.samples, kernel_run.out
    fake = FakeXrt(layout, kernel_run.runs, kernel_run.results)
    # A kernel with runtime weights loads weights.bin, the built network (the first run's), first.
    kernel = host.Kernel(tmp_path / "inrarch.xclbin", report=out / "report.json", pyxrt=fake)
    for x, run, weights in zip(samples, kernel_run.runs, kernel_run.loaded):
        if run.get("reload") and run is not kernel_run.runs[0]:
            kernel.load_weights(bytes.fromhex(run["inputs"]["weights"]))
        outputs = kernel.run(x)
        assert list(outputs) == [b.name for b in layout.outputs]
        for got, ref in zip(outputs.values(), inrarch.reference(kernel_run.fn, x, weights=weights)):
            assert got.shape == tuple(ref.shape) and np.max(np.abs(got - ref.numpy())) <= 1e-3 * ref.abs().max().item()
    if layout.weights is not None:
        with pytest.raises(ValueError, match=f"has 64 bytes; the kernel takes {layout.weights.nbytes}"):
            kernel.load_weights(bytes(64))
    # The command line, with pyxrt importable: outputs.npz holds one array per output.
    monkeypatch.setitem(sys.modules, "pyxrt", fake)
    np.save(tmp_path / "samples.npy", samples[0])
    assert host.main([str(tmp_path / "inrarch.xclbin"), str(tmp_path / "samples.npy"), "--report",
                      str(out / "report.json"), "--out", str(tmp_path / "outputs.npz")]) == 0
    saved = np.load(tmp_path / "outputs.npz")
    assert sorted(saved.files) == ["y0", "y1"] and saved["y1"].shape == (len(samples[0]), 3, 2)
    assert "y1: gradient, (4, 3, 2)" in capsys.readouterr().out


def test_host_py_names_the_core_that_overflowed(kernel_run):
    host, layout = kernel_run.host, kernel_run.layout
    report = json.loads((kernel_run.out / "report.json").read_text())
    assert host.overflow_message(layout, 0) is None
    message = host.overflow_message(layout, 1 | (3 << 8))
    assert f"first in {report['vitis_kernel']['cores'][2]}" in message


def test_runs_that_reload_take_the_image_one_word_a_cycle(kernel_run):
    """A run that reloads takes longer than one that does not by the image's words, plus no more than
    the memory's latency: the 512-bit master streams the image a word a cycle."""
    design, results = kernel_run.design, kernel_run.results
    if not design.runtime_weights:
        pytest.skip("constant weights")
    load = results[0]["cycles"] - results[1]["cycles"]
    print(f"{design.weight_words} words: the run that reloads takes {load} cycles more")
    assert design.weight_words <= load <= design.weight_words + 64
    assert results[3]["cycles"] == results[0]["cycles"]


def test_kernel_writes_nothing_outside_the_output_buffers(kernel_run):
    for result in kernel_run.results:
        for name, guard in result["guards"].items():
            assert bytes.fromhex(guard) == bytes([SENTINEL]) * 128, f"{name}: bytes around the buffer changed"


def test_kernel_files_describe_the_same_registers(kernel_run):
    files, layout = kernel_run.files, kernel_run.layout
    xml = files["kernel_xml"].read_text()
    assert 'hwControlProtocol="ap_ctrl_hs"' in xml
    for buffer in layout.buffers:
        assert f'name="{buffer.name}"' in xml and f'offset="0x{buffer.offset:X}"' in xml
        assert f'port="m_axi_{buffer.name}"' in xml
        assert f"-busif m_axi_{buffer.name} -clock ap_clk" in files["package_xo"].read_text()
        assert f"sp=inrarch_kernel_1.{buffer.name}:HBM[{buffer.index}]" in files["connectivity"].read_text()
    assert f'name="batch" addressQualifier="0" id="{layout.batch_index}"' in xml
    assert "module inrarch_kernel(" in files["verilog"].read_text()
