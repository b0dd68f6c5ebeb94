"""npylstm against ONNX: export_onnx run by onnxruntime and by ONNX's own reference, load_onnx.

onnxruntime's LSTM kernel is float32 only, so float32 exports run there and
are compared at a float32 tolerance (normwise relative error 1e-5) with a
float64 npylstm on the same weights. float64 exports run in
onnx.reference.ReferenceEvaluator, the operator spec in NumPy, at 1e-12.
Every configuration runs at two (T, N), which proves those axes dynamic.
"""
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx.reference import ReferenceEvaluator

import npylstm
from npylstm import interop
from npylstm.model import LSTMRegressor

pytestmark = pytest.mark.reference

F32_TOL = 1e-5
F64_TOL = 1e-12
SHAPES = [(5, 2), (9, 3)]                 # (T, N)


def assert_near(name, got, ref, tol, who):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} ({who}) vs {ref.shape} (npylstm)"
    err = np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300)
    assert err <= tol, f"{name}: {who} vs npylstm differ, relative error {err:.2e} > {tol:.0e}"


def randomize(module, seed):
    """Distinct float32-representable values for every parameter (b_ih != b_hh)."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data[...] = rng.uniform(-0.6, 0.6, p.shape).astype(np.float32)
    return module


def float64_twin(module):
    """The same module in float64: the reference for a float32 export."""
    if isinstance(module, LSTMRegressor):
        variant = {k: v for k, v in interop._variant(module.lstm).items()
                   if v not in (False, None, ())}
        twin = LSTMRegressor(module.lstm.input_size, module.lstm.hidden_size,
                             module.linear.out_features, module.lstm.num_layers, dtype=np.float64,
                             **variant)
    else:
        variant = {k: v for k, v in interop._variant(module).items() if v not in (False, None, ())}
        twin = npylstm.LSTM(module.input_size, module.hidden_size, module.num_layers,
                            bias=module.bias, batch_first=module.batch_first,
                            bidirectional=module.bidirectional, dtype=np.float64,
                            **variant)
    twin.load_state_dict(module.state_dict())
    return twin


def ort_session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def lstm_inputs(lstm, T, N, rng, initial_state):
    """x in the LSTM's layout, and (h0, c0) or None, in the LSTM's dtype."""
    D = 2 if lstm.bidirectional else 1
    shape = (N, T, lstm.input_size) if lstm.batch_first else (T, N, lstm.input_size)
    x = rng.standard_normal(shape).astype(lstm.dtype)
    hx = None
    if initial_state:
        state_shape = (D * lstm.num_layers, N, lstm.hidden_size)
        hx = tuple(rng.standard_normal(state_shape).astype(lstm.dtype) for _ in range(2))
    return x, hx


def check_exported_lstm(lstm, path, run, tol, who, initial_state):
    """Run the exported file at every (T, N) of SHAPES and compare with npylstm."""
    reference = float64_twin(lstm)
    for T, N in SHAPES:
        x, hx = lstm_inputs(lstm, T, N, np.random.default_rng(T * 10 + N), initial_state)
        feeds = {"input": x} if hx is None else {"input": x, "h0": hx[0], "c0": hx[1]}
        output, h_n, c_n = run(feeds)
        ref_output, (ref_h_n, ref_c_n) = reference(x, hx)
        assert_near(f"output at T={T}, N={N}", output, ref_output, tol, who)
        assert_near(f"h_n at T={T}, N={N}", h_n, ref_h_n, tol, who)
        assert_near(f"c_n at T={T}, N={N}", c_n, ref_c_n, tol, who)


CONFIGS = {
    "one layer": dict(),
    "two layers": dict(num_layers=2),
    "bidirectional": dict(bidirectional=True),
    "batch_first": dict(batch_first=True),
    "bidirectional, two layers, batch_first": dict(bidirectional=True, num_layers=2,
                                                   batch_first=True),
    "no bias": dict(bias=False),
}


@pytest.mark.parametrize("initial_state", [False, True], ids=["zero state", "initial state"])
@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_onnxruntime_runs_the_export_like_npylstm(options, initial_state, tmp_path):
    lstm = randomize(npylstm.LSTM(3, 4, rng=0, **options), seed=1)
    path = interop.export_onnx(lstm, tmp_path / "lstm.onnx", initial_state=initial_state)
    session = ort_session(path)
    assert [i.name for i in session.get_inputs()] == (
        ["input", "h0", "c0"] if initial_state else ["input"])
    assert [o.name for o in session.get_outputs()] == ["output", "h_n", "c_n"]
    check_exported_lstm(lstm, path, lambda feeds: session.run(None, feeds), F32_TOL,
                        "onnxruntime", initial_state)


@pytest.mark.parametrize("initial_state", [False, True], ids=["zero state", "initial state"])
@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_onnx_reference_runs_the_float64_export_like_npylstm(options, initial_state, tmp_path):
    lstm = randomize(npylstm.LSTM(3, 4, dtype=np.float64, rng=0, **options), seed=2)
    path = interop.export_onnx(lstm, tmp_path / "lstm64.onnx", initial_state=initial_state)
    evaluator = ReferenceEvaluator(str(path))
    check_exported_lstm(lstm, path, lambda feeds: evaluator.run(None, feeds), F64_TOL,
                        "onnx.reference", initial_state)


VARIANTS = {
    "peephole": dict(peephole=True),
    "input_forget": dict(input_forget=True),
    "clip": dict(clip=0.5),
    "all three, bidirectional, two layers": dict(peephole=True, input_forget=True, clip=0.7,
                                                 bidirectional=True, num_layers=2),
}


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_onnxruntime_runs_exported_variants_like_npylstm(options, tmp_path):
    lstm = randomize(npylstm.LSTM(3, 4, rng=0, **options), seed=6)
    path = interop.export_onnx(lstm, tmp_path / "variant.onnx", initial_state=True)
    node = next(n for n in onnx.load(path).graph.node if n.op_type == "LSTM")
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attributes.get("input_forget", 0) == int(lstm.input_forget)
    assert attributes.get("clip") == pytest.approx(lstm.clip)
    assert (len(node.input) == 8 and node.input[7] == "P_l0") == lstm.peephole
    session = ort_session(path)
    check_exported_lstm(lstm, path, lambda feeds: session.run(None, feeds), F32_TOL,
                        "onnxruntime", initial_state=True)


def test_the_variants_change_the_outputs_the_export_is_checked_on():
    """Without this, the variant tests above could pass on an export that dropped them."""
    x = np.random.default_rng(0).standard_normal((9, 3, 3))
    plain = randomize(npylstm.LSTM(3, 4, dtype=np.float64), seed=6)
    for name, options in VARIANTS.items():
        if "num_layers" in options:
            continue
        # the same draws for the shared parameters (peepholes come after them)
        variant = randomize(npylstm.LSTM(3, 4, dtype=np.float64, **options), seed=6)
        assert np.array_equal(variant.weight_hh_l0.data, plain.weight_hh_l0.data)
        gap = np.max(np.abs(variant(x)[0] - plain(x)[0]))
        assert gap > 1e-2, f"{name} changes the output by {gap:.1e} only"


def test_onnx_reference_runs_a_float64_peephole_export_like_npylstm(tmp_path):
    """ONNX's own NumPy LSTM (it ignores clip and input_forget, so peepholes only)."""
    lstm = randomize(npylstm.LSTM(3, 4, bidirectional=True, peephole=True, dtype=np.float64),
                     seed=7)
    path = interop.export_onnx(lstm, tmp_path / "peephole64.onnx", initial_state=True)
    evaluator = ReferenceEvaluator(str(path))
    check_exported_lstm(lstm, path, lambda feeds: evaluator.run(None, feeds), F64_TOL,
                        "onnx.reference", initial_state=True)


def test_peepholes_go_to_onnx_as_i_o_f():
    H = 3
    lstm = randomize(npylstm.LSTM(2, H, peephole=True, dtype=np.float64), seed=8)
    *_, P = interop.torch_to_onnx(lstm.weight_ih_l0.data, lstm.weight_hh_l0.data,
                                  peepholes=(lstm.weight_ci_l0.data, lstm.weight_cf_l0.data,
                                             lstm.weight_co_l0.data))
    np.testing.assert_array_equal(P, np.concatenate(
        [lstm.weight_ci_l0.data, lstm.weight_co_l0.data, lstm.weight_cf_l0.data]))


@pytest.mark.parametrize("num_layers", [1, 2])
def test_onnxruntime_runs_an_exported_regressor(num_layers, tmp_path):
    model = randomize(LSTMRegressor(2, 6, 3, num_layers, rng=0), seed=3)
    path = interop.export_onnx(model, tmp_path / "regressor.onnx")
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node].count("LSTM") == num_layers
    assert "Gemm" in [n.op_type for n in graph.node]
    session = ort_session(path)
    assert [o.name for o in session.get_outputs()] == ["prediction"]
    reference = float64_twin(model)
    for T, N in SHAPES:
        x = np.random.default_rng(T).standard_normal((T, N, 2)).astype(np.float32)
        (prediction,) = session.run(None, {"input": x})
        assert_near(f"prediction at T={T}, N={N}", prediction, reference(x), F32_TOL, "onnxruntime")


def test_the_graph_has_one_lstm_node_per_layer_and_dynamic_axes(tmp_path):
    lstm = npylstm.LSTM(3, 4, num_layers=3, bidirectional=True, batch_first=True)
    model = onnx.load(interop.export_onnx(lstm, tmp_path / "m.onnx", initial_state=True))
    onnx.checker.check_model(model, full_check=True)
    lstm_nodes = [n for n in model.graph.node if n.op_type == "LSTM"]
    assert len(lstm_nodes) == 3
    assert all(onnx.helper.get_attribute_value(a) == b"bidirectional"
               for n in lstm_nodes for a in n.attribute if a.name == "direction")
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.input) + list(model.graph.output)}
    assert dims == {"input": ["N", "T", 3], "h0": [6, "N", 4], "c0": [6, "N", 4],
                    "output": ["N", "T", 8], "h_n": [6, "N", 4], "c_n": [6, "N", 4]}


def test_onnx_layout_is_iofc_with_two_biases():
    """The conversion in the docstrings, checked by hand on one direction."""
    H = 2
    rows = lambda gate: slice("ifgo".index(gate) * H, ("ifgo".index(gate) + 1) * H)
    lstm = randomize(npylstm.LSTM(3, H, dtype=np.float64), seed=4)
    W, R, B, _ = interop.torch_to_onnx(lstm.weight_ih_l0.data, lstm.weight_hh_l0.data,
                                       lstm.bias_ih_l0.data, lstm.bias_hh_l0.data)
    for block, gate in enumerate("iofg"):                # ONNX's (i, o, f, c)
        onnx_rows = slice(block * H, (block + 1) * H)
        np.testing.assert_array_equal(W[onnx_rows], lstm.weight_ih_l0.data[rows(gate)])
        np.testing.assert_array_equal(R[onnx_rows], lstm.weight_hh_l0.data[rows(gate)])
        np.testing.assert_array_equal(B[onnx_rows], lstm.bias_ih_l0.data[rows(gate)])
        np.testing.assert_array_equal(B[4 * H:][onnx_rows], lstm.bias_hh_l0.data[rows(gate)])


MODULES = {
    "LSTM float32": lambda: npylstm.LSTM(3, 4, rng=0),
    "LSTM float64, every option": lambda: npylstm.LSTM(
        3, 4, num_layers=2, bias=True, batch_first=True, dropout=0.25, bidirectional=True,
        dtype=np.float64, rng=0),
    "LSTM without bias": lambda: npylstm.LSTM(2, 3, bias=False, rng=0),
    "LSTM with every variant ONNX has": lambda: npylstm.LSTM(
        3, 4, num_layers=2, bidirectional=True, peephole=True, input_forget=True, clip=2.5,
        dtype=np.float64, rng=0),
    "LSTMRegressor": lambda: LSTMRegressor(1, 5, 2, num_layers=2, dtype=np.float64, rng=0),
}


@pytest.mark.parametrize("make", MODULES.values(), ids=MODULES.keys())
def test_load_onnx_of_export_onnx_round_trips_exactly(make, tmp_path):
    module = randomize(make(), seed=5)
    if module.dtype == np.float64:                        # values that float32 would round
        for p in module.parameters():
            p.data += 1e-12
    loaded = interop.load_onnx(interop.export_onnx(module, tmp_path / "m.onnx"))
    assert type(loaded) is type(module)
    state, loaded_state = module.state_dict(), loaded.state_dict()
    assert list(loaded_state) == list(state)
    for name in state:
        assert loaded_state[name].dtype == state[name].dtype, f"{name}: dtype changed"
        assert np.array_equal(loaded_state[name], state[name]), f"{name}: values changed"
    if isinstance(module, npylstm.LSTM):
        assert repr(loaded) == repr(module)               # same options, dropout included


def test_export_refuses_proj_size(tmp_path):
    with pytest.raises(ValueError, match="proj_size"):
        interop.export_onnx(npylstm.LSTM(3, 4, proj_size=2), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("ablation", ["input_gate", "forget_gate", "output_gate",
                                      "input_activation", "output_activation"])
def test_export_refuses_a_gate_ablation(ablation, tmp_path):
    with pytest.raises(ValueError, match=f"ablate=.*{ablation}"):
        interop.export_onnx(npylstm.LSTM(3, 4, ablate=(ablation,)), tmp_path / "m.onnx")


def test_export_refuses_initial_state_for_a_regressor(tmp_path):
    with pytest.raises(ValueError, match="initial_state"):
        interop.export_onnx(LSTMRegressor(1, 4), tmp_path / "m.onnx", initial_state=True)


def test_load_onnx_refuses_a_foreign_onnx_file(tmp_path):
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "foreign",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match="not written by npylstm.*metadata_props.*'npylstm'"):
        interop.load_onnx(path)


def test_load_onnx_refuses_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_bytes(b"\xff\xfe this is not a protobuf")
    with pytest.raises(ValueError, match="could not read .*notes.onnx as an ONNX model"):
        interop.load_onnx(path)


def test_load_onnx_names_a_missing_initializer(tmp_path):
    path = interop.export_onnx(npylstm.LSTM(3, 4, num_layers=2), tmp_path / "m.onnx")
    model = onnx.load(path)
    kept = [t for t in model.graph.initializer if t.name != "R_l1"]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.save(model, path)
    with pytest.raises(ValueError, match="no initializer 'R_l1'"):
        interop.load_onnx(path)


def test_a_missing_onnx_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)        # makes `import onnx` fail
    for call in (lambda: interop.export_onnx(npylstm.LSTM(1, 2), tmp_path / "m.onnx"),
                 lambda: interop.load_onnx(tmp_path / "m.onnx")):
        with pytest.raises(ImportError, match=r'pip install "npylstm\[onnx\]"'):
            call()


# Every variant ONNX's LSTM can express (peephole: the P input; input_forget and
# clip: attributes), alone and combined. clip=0.3 is not a float32 number: the
# ONNX attribute is float32, the exact value comes back from the metadata.
ONNX_VARIANTS = {
    "peephole": dict(peephole=True),
    "input_forget": dict(input_forget=True),
    "clip": dict(clip=0.3),
    "peephole, input_forget": dict(peephole=True, input_forget=True),
    "peephole, clip": dict(peephole=True, clip=2.0),
    "input_forget, clip": dict(input_forget=True, clip=0.3),
    "peephole, input_forget, clip": dict(peephole=True, input_forget=True, clip=1.5),
}


def variant_round_trip(module, tmp_path):
    """Export, load, and check that the loaded module is the same: type, options, weights."""
    loaded = interop.load_onnx(interop.export_onnx(module, tmp_path / "m.onnx"))
    assert type(loaded) is type(module)
    lstm, loaded_lstm = (module.lstm, loaded.lstm) if isinstance(module, LSTMRegressor) \
        else (module, loaded)
    assert interop._variant(loaded_lstm) == interop._variant(lstm)
    assert loaded_lstm.bidirectional == lstm.bidirectional
    assert repr(loaded) == repr(module)
    state, loaded_state = module.state_dict(), loaded.state_dict()
    assert list(loaded_state) == list(state)
    for name in state:
        assert np.array_equal(loaded_state[name], state[name]), f"{name}: values changed"
    return loaded


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("options", ONNX_VARIANTS.values(), ids=ONNX_VARIANTS.keys())
def test_load_onnx_rebuilds_every_variant_of_an_lstm(options, bidirectional, tmp_path):
    lstm = npylstm.LSTM(3, 4, num_layers=2, bidirectional=bidirectional, dtype=np.float64,
                        rng=0, **options)
    randomize(lstm, seed=6)
    loaded = variant_round_trip(lstm, tmp_path)
    x = np.random.default_rng(1).standard_normal((6, 2, 3)) * 3      # big enough to clip
    hx = tuple(np.random.default_rng(2).standard_normal((2 * (1 + bidirectional), 2, 4))
               for _ in range(2))
    output, (h_n, c_n) = lstm(x, hx)
    loaded_output, (loaded_h_n, loaded_c_n) = loaded(x, hx)
    np.testing.assert_array_equal(loaded_output, output)              # same process, same weights
    np.testing.assert_array_equal(loaded_h_n, h_n)
    np.testing.assert_array_equal(loaded_c_n, c_n)


@pytest.mark.parametrize("options", ONNX_VARIANTS.values(), ids=ONNX_VARIANTS.keys())
def test_load_onnx_rebuilds_every_variant_of_a_regressor(options, tmp_path):
    model = LSTMRegressor(2, 5, 1, num_layers=2, dtype=np.float64, rng=0, **options)
    randomize(model, seed=7)
    loaded = variant_round_trip(model, tmp_path)
    x = np.random.default_rng(3).standard_normal((7, 4, 2)) * 3
    np.testing.assert_array_equal(loaded(x), model(x))


def test_the_issue_example_keeps_its_predictions(tmp_path):
    """issue 15: input_forget and clip were dropped on load, predictions moved by 0.0099."""
    model = LSTMRegressor(1, 8, input_forget=True, clip=2.0, rng=0)
    x = np.random.default_rng(0).standard_normal((20, 3, 1)).astype(np.float32) * 4
    loaded = interop.load_onnx(interop.export_onnx(model, tmp_path / "m.onnx"))
    assert loaded.lstm.input_forget and loaded.lstm.clip == 2.0
    np.testing.assert_array_equal(loaded(x), model(x))
    plain = LSTMRegressor(1, 8, rng=0)                    # what load_onnx used to build
    plain.load_state_dict(model.state_dict())
    assert not np.array_equal(plain(x), model(x)), "the options do not show in this test"


def test_load_onnx_refuses_nodes_that_contradict_the_metadata(tmp_path):
    path = interop.export_onnx(npylstm.LSTM(3, 4, input_forget=True, clip=2.0), tmp_path / "m.onnx")
    model = onnx.load(path)
    lstm_node = next(node for node in model.graph.node if node.op_type == "LSTM")
    kept = [a for a in lstm_node.attribute if a.name != "input_forget"]
    del lstm_node.attribute[:]
    lstm_node.attribute.extend(kept)
    onnx.save(model, path)
    with pytest.raises(ValueError, match="LSTM nodes of .* say .*'input_forget': False.*"
                                         "metadata says .*'input_forget': True"):
        interop.load_onnx(path)
