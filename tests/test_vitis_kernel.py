"""The Vitis RTL kernel in Verilator: AXI memories (cocotbext-axi AxiRam), AXI-Lite control, compared with torch.

The pytest side compiles a tiny SIREN derivative design, writes the kernel Verilog and runs the
cocotb test ``kernel_runs`` (below, in the simulator's Python) with a JSON job: the buffers'
addresses and input bytes of each run. The bench plays the host: it fills memory, programs the
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


@pytest.fixture(scope="module", params=[(1, False), (2, False), (2, True)],
                ids=["1 lane", "2 lanes", "runtime weights"])
def kernel_run(request, tmp_path_factory):
    import torch

    import inrarch
    from boards.harness import design_ports
    from boards.vitis_kernel import kernel_arguments, status_offset, write_vitis_kernel
    from inrarch.build import kernel_streams
    from sim.verilator import build_model, run_test

    lanes, runtime = request.param
    networks = [inrarch.models.siren(2, 8, 1, 3, 30.0, seed) for seed in (0, 1)]
    fn = inrarch.derivatives(networks[0], 1)
    design = inrarch.compile(fn, torch.zeros(RUNS[0][0], 2), lanes=lanes,
                             weights="runtime" if runtime else "constant")
    directory = tmp_path_factory.mktemp("vitis")
    streams = kernel_streams(design)
    files = write_vitis_kernel(directory, streams, design_ports(design.elaboratable), design.verilog(),
                               clock_mhz=design.options.clock_mhz, lanes=design.netlist.lanes,
                               weight_words=design.weight_words)
    arguments = {a.name: a for a in kernel_arguments(streams, design.weight_words)}
    buffers = [a for a in arguments.values() if a.is_buffer]

    rng = np.random.default_rng(5)
    runs, samples, loaded = [], [], []
    for run_index, (batch, network, stalls) in enumerate(RUNTIME_RUNS if runtime else RUNS):
        x = rng.uniform(-1.0, 1.0, size=(batch, 2))
        samples.append(x)
        raw = design.input_format.quantize(x.reshape(-1))
        addresses = {a.name: ADDRESSES[a.name] + 0x8000 * run_index for a in buffers}
        inputs = {"x": np.asarray(raw, dtype="<i4").tobytes().hex()}
        if runtime and network is not None:
            inputs["weights"] = design.weight_image(networks[network]).hex()
        loaded.append(networks[network] if network is not None else loaded[-1] if loaded else None)
        runs.append({
            "batch": batch,
            "stalls": stalls,
            "reload": runtime and network is not None,
            "addresses": addresses,
            "inputs": inputs,
            "output_bytes": {a.name: batch * a.elements_per_sample * a.element_bytes
                             for a in buffers if a.name not in ("x", "weights")},
        })
    result_path = directory / "result.json"
    job_path = directory / "job.json"
    job_path.write_text(json.dumps({
        "runs": runs,
        "offsets": {a.name: a.offset for a in buffers},
        "batch_offset": arguments["batch"].offset,
        "reload_offset": arguments["reload_weights"].offset if runtime else None,
        "status_offset": status_offset(list(arguments.values())),
        "result": str(result_path),
    }))

    verilog = files["verilog"].read_text()
    model_build = build_model(verilog, "inrarch_kernel")
    here = str(Path(__file__).resolve().parent)
    run_test(model_build, "test_vitis_kernel", testcase="kernel_runs", test_dir=directory, env={
        JOB_ENV: str(job_path),
        "PYTHONPATH": os.pathsep.join([here, str(Path(here).parent), *sys.path]),
    })
    assert result_path.is_file(), (directory / "sim.log").read_text()[-4000:]
    return design, fn, buffers, samples, loaded, json.loads(result_path.read_text()), files


def test_kernel_outputs_match_torch(kernel_run):
    import inrarch

    design, fn, buffers, samples, loaded, results, _ = kernel_run
    outputs = [a for a in buffers if a.name not in ("x", "weights")]
    for x, weights, result in zip(samples, loaded, results):
        reference = [r.numpy() for r in inrarch.reference(fn, x, weights=weights)]
        for argument, ref in zip(outputs, reference):
            raw = np.frombuffer(bytes.fromhex(result["outputs"][argument.name]), dtype="<i4")
            got = argument.format.to_float(raw).reshape(ref.shape)
            error = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
            print(f"batch {len(x)} {argument.name}: error {error:.2e} of max|ref|, {result['cycles']} cycles")
            assert error <= 1e-3, f"{argument.name} off by {error:.2e} of max|ref|"
        assert result["status"] == 0, "the design reported an overflow"


def test_runs_that_reload_take_the_image_one_word_a_cycle(kernel_run):
    """A run that reloads takes longer than one that does not by the image's words, plus no more than
    the memory's latency: the 512-bit master streams the image a word a cycle."""
    design, *_, results, _ = kernel_run
    if not design.runtime_weights:
        pytest.skip("constant weights")
    load = results[0]["cycles"] - results[1]["cycles"]
    print(f"{design.weight_words} words: the run that reloads takes {load} cycles more")
    assert design.weight_words <= load <= design.weight_words + 64
    assert results[3]["cycles"] == results[0]["cycles"]


def test_kernel_writes_nothing_outside_the_output_buffers(kernel_run):
    *_, results, _ = kernel_run
    for result in results:
        for name, guard in result["guards"].items():
            assert bytes.fromhex(guard) == bytes([SENTINEL]) * 128, f"{name}: bytes around the buffer changed"


def test_kernel_files_describe_the_same_registers(kernel_run):
    design, _, buffers, _, _, _, files = kernel_run
    xml = files["kernel_xml"].read_text()
    assert 'hwControlProtocol="ap_ctrl_hs"' in xml
    for argument in buffers:
        assert f'name="{argument.name}"' in xml and f'offset="0x{argument.offset:X}"' in xml
        assert f'port="{argument.port}"' in xml
        assert f"-busif {argument.port} -clock ap_clk" in files["package_xo"].read_text()
    assert "module inrarch_kernel(" in files["verilog"].read_text()
