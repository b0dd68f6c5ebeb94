"""Variants against a second, independent implementation: onnxruntime's LSTM operator.

The ONNX model is built here with onnx.helper, straight from the operator's
spec (not with npylstm.interop): peephole P, input_forget and clip are ONNX's
own attributes. ONNX stores the gates as (i, o, f, c) and P as (i, o, f):
W (D, 4H, I), R (D, 4H, H), B (D, 8H) = [Wb | Rb], P (D, 3H); Y is
(T, D, N, H). onnxruntime's LSTM has float32 only, so the forward outputs are
compared in float32; the gradients are checked by finite differences in
test_variants.py.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import npylstm

pytestmark = pytest.mark.reference

TORCH_TO_ONNX = [0, 3, 1, 2]        # torch blocks (i, f, g, o) -> ONNX (i, o, f, c)
ATOL = 1e-5                         # float32 round-off over 9 steps on O(1) values (seen: 1e-6)


def to_onnx_gates(w, H):
    return np.concatenate([w[k * H:(k + 1) * H] for k in TORCH_TO_ONNX])


def onnx_lstm(lstm, x, hx, lengths):
    """Run lstm's weights through onnxruntime's LSTM. Returns (output, h_n, c_n) in torch's layout."""
    H, D, T, N = lstm.hidden_size, 2 if lstm.bidirectional else 1, x.shape[0], x.shape[1]
    suffixes = ["", "_reverse"][:D]
    p = lambda name, s: getattr(lstm, f"{name}_l0{s}").data
    W = np.stack([to_onnx_gates(p("weight_ih", s), H) for s in suffixes])
    R = np.stack([to_onnx_gates(p("weight_hh", s), H) for s in suffixes])
    B = np.stack([np.concatenate([to_onnx_gates(p("bias_ih", s), H), to_onnx_gates(p("bias_hh", s), H)])
                  for s in suffixes])
    feeds = dict(X=x, W=W, R=R, B=B)
    inputs = ["X", "W", "R", "B", "", "", "", ""]
    if lengths is not None:
        feeds["sequence_lens"], inputs[4] = np.asarray(lengths, np.int32), "sequence_lens"
    if hx is not None:
        feeds["initial_h"], feeds["initial_c"] = hx
        inputs[5:7] = ["initial_h", "initial_c"]
    if lstm.peephole:
        feeds["P"] = np.stack([np.concatenate([p("weight_ci", s), p("weight_co", s), p("weight_cf", s)])
                               for s in suffixes])
        inputs[7] = "P"
    while inputs[-1] == "":
        inputs.pop()
    attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward",
                 input_forget=int(lstm.input_forget))
    if lstm.clip is not None:
        attrs["clip"] = lstm.clip
    node = helper.make_node("LSTM", inputs, ["Y", "Y_h", "Y_c"], **attrs)
    f32 = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    graph_inputs = [f32(k, v.shape) if k != "sequence_lens"
                    else helper.make_tensor_value_info(k, TensorProto.INT32, v.shape)
                    for k, v in feeds.items()]
    graph = helper.make_graph([node], "lstm", graph_inputs,
                              [f32("Y", [T, D, N, H]), f32("Y_h", [D, N, H]), f32("Y_c", [D, N, H])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Y, Y_h, Y_c = session.run(None, feeds)
    return Y.transpose(0, 2, 1, 3).reshape(T, N, D * H), Y_h, Y_c


VARIANTS = {
    "peephole": dict(peephole=True),
    "input_forget": dict(input_forget=True),
    "clip": dict(clip=0.8),
    "peephole+input_forget+clip": dict(peephole=True, input_forget=True, clip=0.8),
    "standard": dict(),
}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("name", VARIANTS)
def test_forward_matches_onnxruntime(name, bidirectional, with_hx, with_lengths):
    rng = np.random.default_rng(7)
    T, N, I, H = 9, 5, 3, 6
    lstm = npylstm.LSTM(I, H, bidirectional=bidirectional, dtype=np.float32, rng=0, **VARIANTS[name])
    for p in lstm.parameters():
        p.data[...] = rng.uniform(-1, 1, p.shape)       # large enough that clip=0.8 bites
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    hx = None
    if with_hx:
        hx = (rng.standard_normal((D, N, H)).astype(np.float32),
              (2 * rng.standard_normal((D, N, H))).astype(np.float32))
    lengths = np.array([9, 3, 7, 1, 9]) if with_lengths else None
    out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    ref = onnx_lstm(lstm, x, hx, lengths)
    for what, mine, theirs in zip(("output", "h_n", "c_n"), (out, h_n, c_n), ref):
        assert mine.shape == theirs.shape, f"{name}: {what} shape {mine.shape} vs onnxruntime {theirs.shape}"
        err = float(np.max(np.abs(mine - theirs)))
        assert err <= ATOL, f"{name}: {what} differs from onnxruntime by {err:.2e} > {ATOL:.0e}"
    if lstm.clip is not None and with_hx and with_lengths:
        # The cell itself is never clipped: the parity means something only if |c| > clip,
        # here after step 1 of the length-1 sequence, which starts from a large c_0.
        assert np.max(np.abs(c_n)) > lstm.clip, f"{name}: |c_n| stays below the clip bound"


def test_the_clip_cases_clip_some_pre_activations():
    """clip=0.8 must clip some gate pre-activations of the cases above, but not all
    (step 0 of the zero-state cases, computed here from the weights)."""
    rng = np.random.default_rng(7)
    T, N, I, H = 9, 5, 3, 6
    lstm = npylstm.LSTM(I, H, dtype=np.float32, rng=0, clip=0.8)
    for p in lstm.parameters():
        p.data[...] = rng.uniform(-1, 1, p.shape)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    z = x[0] @ lstm.weight_ih_l0.data.T + lstm.bias_ih_l0.data + lstm.bias_hh_l0.data   # h0 = c0 = 0
    clipped = np.abs(z) > 0.8
    assert clipped.any() and not clipped.all(), f"clip=0.8 clips {clipped.sum()} of {z.size}"
