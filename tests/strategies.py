"""Hypothesis strategies for loss programs and kernel inputs."""

import torch
from hypothesis import strategies as st

from lossgen.ir.opset import N_INPUT_SLOTS, Op
from lossgen.ir.programs import Program
from lossgen.kernels.verify import SPECIAL_INPUTS


@st.composite
def programs(draw, max_steps=7, ops=tuple(Op)):
    length = draw(st.integers(1, max_steps))
    rows = []
    for t in range(length):
        op = draw(st.sampled_from(ops))
        written = N_INPUT_SLOTS + t
        a = draw(st.integers(0, written - 1))
        b = 0
        if op.arity == 2:
            b = draw(st.integers(0, written - 1).filter(lambda v: v != a))
        rows.append((int(op), a, b))
    return Program(rows)


# Inputs with 0, negatives, values beyond every clamp bound, and (via pairing) ties.
edge_floats = st.one_of(
    st.sampled_from(SPECIAL_INPUTS),
    st.floats(-3.0, 3.0, width=32),
    st.floats(-2e6, 2e6, width=32),
)


@st.composite
def point_pairs(draw, min_size=1, max_size=40):
    n = draw(st.integers(min_size, max_size))
    y_hat = draw(st.lists(edge_floats, min_size=n, max_size=n))
    y = [draw(st.one_of(st.sampled_from([0.0, 1.0, yh]), edge_floats)) for yh in y_hat]  # ties too
    return torch.tensor(y_hat, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
