"""Property: any small MLP's gradients compile, simulate in Verilator and match float64 torch.

The cases and their check are ``bench/fuzz.py``'s (its long mode runs hundreds); here hypothesis
draws a few, derandomized so CI is reproducible. Each case costs a Verilator build, so the
number of examples stays at three (``INRARCH_FUZZ_EXAMPLES`` raises it locally).
"""

import importlib.util
import os
from pathlib import Path

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

_spec = importlib.util.spec_from_file_location("fuzz", Path(__file__).resolve().parent.parent / "bench" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

cases = st.builds(
    fuzz.Case,
    activation=st.sampled_from(fuzz.ACTIVATIONS),
    w0=st.floats(*fuzz.W0_RANGE).map(lambda w0: round(w0, 3)),
    width=st.integers(*fuzz.WIDTHS),
    depth=st.integers(*fuzz.DEPTHS),
    in_features=st.integers(*fuzz.IN_FEATURES),
    out_features=st.integers(*fuzz.OUT_FEATURES),
    order=st.integers(*fuzz.ORDERS),
    seed=st.integers(0, 2**31 - 1),
    valid_prob=st.sampled_from([0.3, 0.6, 1.0]),
    ready_prob=st.sampled_from([0.3, 0.6, 1.0]),
)


@settings(max_examples=int(os.environ.get("INRARCH_FUZZ_EXAMPLES", 3)), deadline=None, derandomize=True,
          database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases)
def test_random_mlp_gradients_match_torch_in_verilator(case):
    note(f"case: {case!r}")
    outcome = fuzz.run_case(case)
    assert outcome.status in ("pass", "unsupported"), f"{case.describe()}: {outcome.detail}"
