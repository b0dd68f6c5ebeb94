"""benchmarks/: the FLOP count and the GEMM replay that the efficiency tables rest on (no timing)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import npylstm
from npylstm.functional import layer

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_case_flops_by_hand():
    run = load("run")
    # One layer: 2 * 4H * (I + H) * T * N; forward + backward 3x.
    assert run.case_flops((40, 450, 1, 100), {}) == (2 * 400 * 101 * 40 * 450, 3 * 2 * 400 * 101 * 40 * 450)
    # Two bidirectional layers: layer 1 reads 2H inputs; two directions each.
    fwd, _ = run.case_flops((40, 64, 32, 128), {"layers": 2, "bidirectional": True})
    assert fwd == 2 * 2 * 512 * (32 + 128) * 40 * 64 + 2 * 2 * 512 * (256 + 128) * 40 * 64
    # With random lengths only the running steps count: fewer than T * N.
    fwd_lengths, _ = run.case_flops((40, 450, 1, 100), {"lengths": "random"})
    lengths = np.random.default_rng(2).integers(1, 41, 450)
    assert fwd_lengths == 2 * 400 * 101 * int(lengths.sum()) < 2 * 400 * 101 * 40 * 450


class Recorder:
    """Stands in for numpy inside layer.py; records the shapes of every np.matmul call."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, **kwargs):
        self.calls.append((a.shape, b.shape))
        return np.matmul(a, b, **kwargs)


@pytest.mark.parametrize("case", [
    dict(shape=(5, 4, 3, 6)),
    dict(shape=(5, 4, 3, 6), layers=2, bidirectional=True),
    dict(shape=(6, 5, 3, 4), lengths="random"),
])
@pytest.mark.parametrize("hoist_from", [10 ** 9, 1])
def test_gemm_replay_makes_the_layers_products(monkeypatch, case, hoist_from):
    """worker.gemm_sequences must replay the np.matmul calls of layer.py, in shapes and number.

    Backward's two products after the loop (dW and dx) are written with @ in layer.py and not
    seen by the recorder: the replay has exactly two more per layer and direction.
    """
    worker = load("worker")
    monkeypatch.setattr(layer, "HOIST_MIN_INPUT", hoist_from)
    case = dict(case, dtype="float64")
    T, N, I, H = case["shape"]
    L, D = case.get("layers", 1), 2 if case.get("bidirectional") else 1
    lstm = npylstm.LSTM(I, H, num_layers=L, bidirectional=D == 2, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((T, N, I))
    lengths = worker.lengths_of(case, T, N)
    replay = worker.gemm_sequences(case, np.float64)
    shapes = lambda triples: sorted((a.shape, b.shape) for a, b, _ in triples)
    recorder = Recorder()
    monkeypatch.setattr(layer, "np", recorder)
    with npylstm.no_grad():
        lstm(x, lengths=lengths)
    assert sorted(recorder.calls) == shapes(replay["fwd"])
    recorder.calls.clear()
    out, _ = lstm(x, lengths=lengths)
    lstm.backward(np.ones_like(out))
    TN = T * N
    grad_w = [t for t in replay["fb"] if t[1].shape[0] == TN]                  # dz @ inputs^T
    grad_x = [t for t in replay["fb"] if t[1].shape[-1] == TN and t[0].shape[0] != 4 * H]
    assert len(grad_w) == len(grad_x) == L * D
    matmuls = [t for t in replay["fb"] if not any(t is u for u in grad_w + grad_x)]
    assert sorted(recorder.calls) == shapes(matmuls)
