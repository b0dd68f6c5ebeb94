"""npylstm against Keras 3's own LSTM (torch backend): to_keras, from_keras.

Keras computes in float32, so its results are compared at a float32
tolerance (normwise relative error 1e-5; the errors measured are ~1e-7).
npylstm runs in float64 on the same (float32-representable) weights, so the
difference measured is Keras's own round-off.
"""
import keras          # conftest selects the torch backend before this import
import numpy as np
import pytest

import npylstm
from npylstm import interop

F32_TOL = 1e-5

# Keras's variables warn under numpy 2 on np.array(variable); not ours to fix.
pytestmark = [pytest.mark.reference,
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


def numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


def assert_near(name, got, ref, tol=F32_TOL, who="Keras"):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} ({who}) vs {ref.shape} (npylstm)"
    err = np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300)
    assert err <= tol, f"{name}: {who} vs npylstm differ, relative error {err:.2e} > {tol:.0e}"


def random_lstm(I, H, seed=0, **options):
    """A float64 npylstm.LSTM with distinct float32-representable weights (b_ih != b_hh)."""
    lstm = npylstm.LSTM(I, H, batch_first=True, dtype=np.float64, rng=seed, **options)
    rng = np.random.default_rng(seed + 100)
    for p in lstm.parameters():
        p.data[...] = rng.uniform(-0.6, 0.6, p.shape).astype(np.float32)
    return lstm


def keras_stack(lstm):
    """One Keras layer per npylstm layer, each returning its sequence and final states."""
    make = lambda: keras.layers.LSTM(lstm.hidden_size, return_sequences=True, return_state=True,
                                     use_bias=lstm.bias)
    return [keras.layers.Bidirectional(make()) if lstm.bidirectional else make()
            for _ in range(lstm.num_layers)]


def run_keras(layers, x):
    """Run stacked Keras layers on x (N, T, I) -> output, [h, c of each layer and direction]."""
    states, y = [], x
    for layer in layers:
        y, *layer_states = layer(y)
        states += layer_states          # LSTM: h, c; Bidirectional: h_fw, c_fw, h_bw, c_bw
    return numpy(y), [numpy(s) for s in states]


CONFIGS = {
    "one layer": dict(),
    "no bias": dict(bias=False),
    "two stacked layers": dict(num_layers=2),
    "bidirectional": dict(bidirectional=True),
    "bidirectional, two layers": dict(bidirectional=True, num_layers=2),
}


@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_keras_with_to_keras_weights_gives_npylstm_outputs(options):
    N, T, I, H = 3, 6, 4, 5
    lstm = random_lstm(I, H, **options)
    x = np.random.default_rng(1).standard_normal((N, T, I)).astype(np.float32)

    layers = keras_stack(lstm)
    run_keras(layers, x)                                  # builds the layers
    for layer, weights in zip(layers, interop.to_keras(lstm)):
        layer.set_weights(weights)
    k_out, k_states = run_keras(layers, x)

    out, (h_n, c_n) = lstm(x)
    assert_near("output", k_out, out)
    for j in range(h_n.shape[0]):                   # torch's row j: layer j // D, direction j % D
        assert_near(f"h_n[{j}]", k_states[2 * j], h_n[j])
        assert_near(f"c_n[{j}]", k_states[2 * j + 1], c_n[j])


@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_from_keras_of_to_keras_gives_the_same_lstm(options):
    lstm = random_lstm(3, 4, **options)
    back = interop.from_keras(interop.to_keras(lstm), bidirectional=lstm.bidirectional,
                              dtype=np.float64, batch_first=True)
    x = np.random.default_rng(2).standard_normal((2, 5, 3))
    out, (h_n, c_n) = lstm(x)
    out2, (h_n2, c_n2) = back(x)
    for name, a, b in [("output", out2, out), ("h_n", h_n2, h_n), ("c_n", c_n2, c_n)]:
        assert_near(name, a, b, tol=1e-14, who="from_keras(to_keras(m))")
    for name, p in lstm.named_parameters():
        if name.startswith("weight"):
            assert np.array_equal(getattr(back, name).data, p.data), f"{name} changed on the way"
    if lstm.bias:      # Keras keeps the sum only: it comes back as bias_ih, with bias_hh zero
        np.testing.assert_array_equal(back.bias_ih_l0.data,
                                      lstm.bias_ih_l0.data + lstm.bias_hh_l0.data)
        np.testing.assert_array_equal(back.bias_hh_l0.data, 0)


@pytest.mark.parametrize("given", ["the layer", "a list of it", "its get_weights()"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["LSTM", "Bidirectional"])
def test_keras_own_random_weights_through_from_keras_match_keras(bidirectional, given):
    """Keras's initialisation (glorot kernel, orthogonal recurrent kernel, forget bias 1).

    A layer (or a list of layers) says itself whether it is Bidirectional; arrays need
    ``bidirectional=`` to be given."""
    N, T, I, H = 2, 7, 3, 6
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    x = np.random.default_rng(3).standard_normal((N, T, I)).astype(np.float32)
    k_out, k_states = run_keras([layer], x)

    if given == "the layer":
        lstm = interop.from_keras(layer, dtype=np.float64, batch_first=True)
    elif given == "a list of it":
        lstm = interop.from_keras([layer], dtype=np.float64, batch_first=True)
    else:
        lstm = interop.from_keras([layer.get_weights()], bidirectional=bidirectional,
                                  dtype=np.float64, batch_first=True)
    assert lstm.bidirectional == bidirectional and lstm.num_layers == 1
    out, (h_n, c_n) = lstm(x)
    assert_near("output", k_out, out)
    for j in range(h_n.shape[0]):
        assert_near(f"h_n[{j}]", k_states[2 * j], h_n[j])
        assert_near(f"c_n[{j}]", k_states[2 * j + 1], c_n[j])


@pytest.mark.parametrize("bidirectional", [False, True], ids=["LSTM", "Bidirectional"])
@pytest.mark.parametrize("build", ["Sequential", "functional"])
def test_from_keras_of_a_model_takes_its_stacked_lstm_layers(bidirectional, build):
    """A model with a Dense head: from_keras takes the LSTM layers, which give Keras's features."""
    N, T, I, H = 2, 6, 3, 5
    keras.utils.set_random_seed(1)
    wrap = keras.layers.Bidirectional if bidirectional else (lambda layer: layer)
    first, second = wrap(keras.layers.LSTM(H, return_sequences=True)), wrap(keras.layers.LSTM(H))
    head = keras.layers.Dense(1)
    if build == "Sequential":
        model = keras.Sequential([keras.Input((T, I)), first, second, head])
    else:
        inputs = keras.Input((T, I))
        model = keras.Model(inputs, head(second(first(inputs))))
    x = np.random.default_rng(4).standard_normal((N, T, I)).astype(np.float32)
    features = numpy(second(first(x)))                   # (N, D*H): the last step of the stack

    lstm = interop.from_keras(model, dtype=np.float64, batch_first=True)
    assert (lstm.num_layers, lstm.bidirectional, lstm.hidden_size) == (2, bidirectional, H)
    output, (h_n, _) = lstm(x)
    if bidirectional:   # Keras's last step: forward h after step T, backward h after its run (t=0)
        assert_near("features", features, np.concatenate([h_n[2], h_n[3]], axis=1))
    else:
        assert_near("features", features, output[:, -1])


def built(layer, I=3):
    """A Keras layer, called once on (1, 4, I) zeros so that it has its weights."""
    layer(np.zeros((1, 4, I), np.float32))
    return layer


def seq_lstm(**options):
    return built(keras.layers.LSTM(4, return_sequences=True, **options))


ACCEPTS = "from_keras accepts to_keras's output"
# name: (a call of from_keras on something it must refuse, the message it must give)
REFUSED = {
    "an array": (lambda: interop.from_keras(np.zeros((3, 16))), ACCEPTS),
    "one layer's arrays without the outer list":
        (lambda: interop.from_keras(interop.to_keras(npylstm.LSTM(3, 4))[0]), ACCEPTS),
    "a Dense layer": (lambda: interop.from_keras(built(keras.layers.Dense(2))), ACCEPTS),
    "a list with a Dense layer":
        (lambda: interop.from_keras([seq_lstm(), built(keras.layers.Dense(2), I=4)]), ACCEPTS),
    "a string": (lambda: interop.from_keras("lstm"), ACCEPTS),
    "a model without LSTM": (lambda: interop.from_keras(
        keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(2)])), "has no LSTM"),
    "a model with a layer between its LSTMs": (lambda: interop.from_keras(
        keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(4, return_sequences=True),
                          keras.layers.Dense(4), keras.layers.LSTM(4)])), "not stacked"),
    "a stack on a layer without sequences": (lambda: interop.from_keras(
        [built(keras.layers.LSTM(4)), seq_lstm()]), "return_sequences=False"),
    "LSTM and Bidirectional mixed": (lambda: interop.from_keras(
        [seq_lstm(), built(keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
                           I=4)]), "mix LSTM and Bidirectional"),
    "bidirectional=True for an LSTM layer":
        (lambda: interop.from_keras(seq_lstm(), bidirectional=True), "not Bidirectional"),
    "merge_mode sum": (lambda: interop.from_keras(built(keras.layers.Bidirectional(
        keras.layers.LSTM(4, return_sequences=True), merge_mode="sum"))), "merge_mode='sum'"),
    "a relu activation":
        (lambda: interop.from_keras(seq_lstm(activation="relu")), "activation='relu'"),
    "a hard_sigmoid gate": (lambda: interop.from_keras(seq_lstm(recurrent_activation="hard_sigmoid")),
                            "recurrent_activation='hard_sigmoid'"),
    "go_backwards": (lambda: interop.from_keras(seq_lstm(go_backwards=True)), "go_backwards=True"),
    "an unbuilt layer": (lambda: interop.from_keras(keras.layers.LSTM(4)), "no weights yet"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_from_keras_refuses_what_it_cannot_take_and_says_what_it_accepts(case):
    call, message = REFUSED[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_keras_layout_is_the_transpose_with_one_summed_bias():
    """The conversion in the docstrings, checked by hand on one layer."""
    lstm = random_lstm(3, 2)
    kernel, recurrent_kernel, bias = interop.to_keras(lstm)[0]
    np.testing.assert_array_equal(kernel, lstm.weight_ih_l0.data.T)              # (I, 4H)
    np.testing.assert_array_equal(recurrent_kernel, lstm.weight_hh_l0.data.T)    # (H, 4H)
    np.testing.assert_array_equal(bias, lstm.bias_ih_l0.data + lstm.bias_hh_l0.data)


@pytest.mark.parametrize("option, value", [
    ("proj_size", 2), ("peephole", True), ("input_forget", True), ("clip", 1.0),
    ("ablate", ("forget_gate",))])
def test_to_keras_refuses_what_keras_cannot_hold(option, value):
    with pytest.raises(ValueError, match=f"Keras's LSTM cannot express {option}="):
        interop.to_keras(npylstm.LSTM(3, 4, **{option: value}))


def test_from_keras_refuses_inconsistent_arrays():
    weights = interop.to_keras(npylstm.LSTM(3, 4, num_layers=2))
    weights[1][1] = weights[1][1][:, :8]                  # layer 1's recurrent_kernel (4, 8)
    with pytest.raises(ValueError, match=r"layer 1's recurrent_kernel of shape \(4, 16\)"):
        interop.from_keras(weights)
    with pytest.raises(ValueError, match="arrays per layer"):
        interop.from_keras([weights[0][:1]])
