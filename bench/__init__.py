"""The benchmarks: every figure the README and ``docs/`` publish is measured here.

Run each from the repository's root; each records its figures under its own key in
``bench/results.json`` (:mod:`bench.results`), and ``python -m bench.publish`` rewrites the
README's and the docs' tables from that file.

- ``python -m bench.workload``: inrarch against INR-Arch and torch on INR-Arch's workload;
- ``python -m bench.compile_time``: seconds of each compiler stage on the default SIREN;
- ``python -m bench.formats``: error against bits per edge, uniform widths and the search;
- ``python -m bench.core_resources``: yosys synthesis of each core at default parameters;
- ``python -m bench.nonlinear_errors``: each nonlinear core's error over its input range;
- ``python -m bench.synth_estimate``: the analytic estimate against yosys synthesis;
- ``python -m bench.solver``: compile-stage times and buffer memory beside INR-Arch's;
- ``python -m bench.fuzz``: random models end to end in Verilator (the long fuzz);
- ``python -m bench.fmax``: place and route of every core and two SIRENs on an ECP5 LFE5U-85F-8.

:mod:`bench.constants` holds INR-Arch's published figures and the workloads, once.
"""
