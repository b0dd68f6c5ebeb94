"""npylstm.interop: the same LSTM in Keras and ONNX, with the layouts made explicit.

Every framework computes the same cell but stores its weights differently.
The differences live here, once, as small conversion functions whose
docstrings state both layouts (docs/interop.md has them as one table):

    torch / npylstm   W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,)   gates (i, f, g, o)
    Keras             kernel (I, 4H), recurrent_kernel (H, 4H),
                      one bias (4H,) = b_ih + b_hh                    gates (i, f, c, o)
    ONNX LSTM         W (D, 4H, I), R (D, 4H, H), B (D, 8H) = [Wb, Rb],
                      P (D, 3H) peepholes                             gates (i, o, f, c)

Gate orders are written in torch's letters: i input gate, f forget gate,
g cell candidate (Keras and ONNX call it c), o output gate.

Public functions:
- to_keras(lstm) / from_keras(layers, ...): lists of arrays for Keras's
  ``set_weights`` / ``get_weights``; Keras itself is never imported.
- export_onnx(module, path, ...) / load_onnx(path): a real ONNX graph with one
  LSTM node per layer; needs the ``onnx`` package, imported in these two only.

Shapes: T steps, N batch, I input size, H hidden size, D = 2 if bidirectional
else 1, L = num_layers.
"""
import json

import numpy as np

from .lstm import LSTM
from .model import LSTMRegressor

TORCH_GATES = "ifgo"      # torch, npylstm and Keras (Keras writes c for g)
ONNX_GATES = "iofg"       # ONNX writes (i, o, f, c)
ONNX_PEEPHOLES = "iof"    # ONNX P: input, output, forget

OPSET = 17                # ONNX opset of the exported graph (LSTM-14 semantics)
IR_VERSION = 8            # the IR version that goes with opset 17
METADATA_KEY = "npylstm"  # metadata_props entry that load_onnx reads back


# ---------------------------------------------------------------------------
# Gate order and weight layouts, one direction of one layer at a time
# ---------------------------------------------------------------------------

def reorder_gates(array, source, target, axis=0):
    """Permute the four H-sized gate blocks of ``array`` along ``axis``.

    Inputs:
    - array: an array whose ``axis`` has length 4H, made of four blocks of H
    - source, target: gate orders in torch's letters, such as "ifgo" (torch,
      Keras), "iofg" (ONNX), "igfo" (TensorFlow's LSTMBlockCell)

    Returns the array with the same blocks stacked in the ``target`` order.
    """
    blocks = dict(zip(source, np.split(np.asarray(array), 4, axis=axis)))
    return np.concatenate([blocks[gate] for gate in target], axis=axis)


def torch_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One layer and direction, torch layout -> Keras layout.

    torch / npylstm: z = x W_ih^T + b_ih + h W_hh^T + b_hh, with
        weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,),
        gate blocks (i, f, g, o) along the 4H axis.
    Keras (keras.layers.LSTM): z = x kernel + h recurrent_kernel + bias, with
        kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,),
        gate blocks (i, f, c, o) along the 4H axis: the same order.

    So the matrices are transposed and the two biases, which only ever
    appear as a sum, become one: bias = b_ih + b_hh.

    Returns [kernel, recurrent_kernel, bias], or [kernel, recurrent_kernel]
    without biases.
    """
    weights = [np.ascontiguousarray(weight_ih.T), np.ascontiguousarray(weight_hh.T)]
    if bias_ih is not None:
        weights.append(bias_ih + bias_hh)
    return weights


def keras_to_torch(kernel, recurrent_kernel, bias=None):
    """One layer and direction, Keras layout -> torch layout.

    Keras: kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,); gates (i, f, c, o).
    torch / npylstm: weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,),
        bias_hh (4H,); gates (i, f, g, o).

    Keras's one bias goes into bias_ih and bias_hh is zero: only their sum
    enters the equations, so any split gives the same outputs.

    Returns a dict weight_ih, weight_hh (and bias_ih, bias_hh with a bias).
    """
    weights = {"weight_ih": np.ascontiguousarray(kernel.T),
               "weight_hh": np.ascontiguousarray(recurrent_kernel.T)}
    if bias is not None:
        weights["bias_ih"] = np.array(bias)
        weights["bias_hh"] = np.zeros_like(bias)
    return weights


def torch_to_onnx(weight_ih, weight_hh, bias_ih=None, bias_hh=None, peepholes=None):
    """One layer and direction, torch layout -> ONNX LSTM layout.

    torch / npylstm: weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,),
        bias_hh (4H,), gate blocks (i, f, g, o); peepholes (weight_ci,
        weight_cf, weight_co), each (H,).
    ONNX LSTM (one slice of the direction axis D): W (4H, I), R (4H, H),
        B (8H,) = [Wb (4H,), Rb (4H,)], gate blocks (i, o, f, c);
        P (3H,) = [P_i, P_o, P_f].

    Both store matrices as (4H, .), so only the gate blocks move. The two
    biases stay two (Wb = b_ih, Rb = b_hh, reordered).

    Returns W, R, B (None without biases), P (None without peepholes).
    """
    W = reorder_gates(weight_ih, TORCH_GATES, ONNX_GATES)
    R = reorder_gates(weight_hh, TORCH_GATES, ONNX_GATES)
    B = None
    if bias_ih is not None:
        B = np.concatenate([reorder_gates(bias_ih, TORCH_GATES, ONNX_GATES),
                            reorder_gates(bias_hh, TORCH_GATES, ONNX_GATES)])
    P = None
    if peepholes is not None:
        weight_ci, weight_cf, weight_co = peepholes
        P = np.concatenate([weight_ci, weight_co, weight_cf])          # (i, o, f)
    return W, R, B, P


def onnx_to_torch(W, R, B=None, P=None):
    """One layer and direction, ONNX LSTM layout -> torch layout.

    ONNX: W (4H, I), R (4H, H), B (8H,) = [Wb, Rb], P (3H,) = [P_i, P_o, P_f];
        gate blocks (i, o, f, c).
    torch / npylstm: weight_ih (4H, I), weight_hh (4H, H), bias_ih = Wb,
        bias_hh = Rb (4H,); gate blocks (i, f, g, o); weight_ci, weight_cf,
        weight_co (H,).

    Returns a dict with torch's names (without the _l{k} suffix).
    """
    weights = {"weight_ih": reorder_gates(W, ONNX_GATES, TORCH_GATES),
               "weight_hh": reorder_gates(R, ONNX_GATES, TORCH_GATES)}
    if B is not None:
        Wb, Rb = np.split(np.asarray(B), 2)
        weights["bias_ih"] = reorder_gates(Wb, ONNX_GATES, TORCH_GATES)
        weights["bias_hh"] = reorder_gates(Rb, ONNX_GATES, TORCH_GATES)
    if P is not None:
        P_i, P_o, P_f = np.split(np.asarray(P), 3)
        weights.update(weight_ci=P_i, weight_cf=P_f, weight_co=P_o)
    return weights


# ---------------------------------------------------------------------------
# Reading an npylstm.LSTM
# ---------------------------------------------------------------------------

def _suffix(k, d):
    return f"_l{k}" + ("_reverse" if d else "")


def _direction_weights(lstm, k, d, names):
    """{name: array} of layer k, direction d, for the names that exist."""
    found = {}
    for name in names:
        p = getattr(lstm, name + _suffix(k, d), None)
        if p is not None:
            found[name] = p.data
    return found


def _variant(lstm):
    """The LSTM's variant options (docs/lstm.md, section 11), as a dict."""
    return dict(peephole=lstm.peephole, input_forget=lstm.input_forget, clip=lstm.clip,
                ablate=lstm.ablate)


def _refuse(target, lstm, options):
    """ValueError naming the first option of ``options`` that ``lstm`` uses."""
    variant = _variant(lstm)
    used = {"proj_size": lstm.proj_size, "peephole": variant["peephole"],
            "input_forget": variant["input_forget"], "clip": variant["clip"],
            "ablate": variant["ablate"]}
    for option in options:
        if used[option]:
            raise ValueError(f"{target} cannot express {option}={used[option]!r}; "
                             f"an LSTM with {option} has no equivalent there")


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------

def to_keras(lstm):
    """The weights of an npylstm.LSTM for Keras 3, one list of arrays per layer.

    Each item is what ``keras.layers.LSTM(H, return_sequences=True)
    .set_weights()`` takes: [kernel (I, 4H), recurrent_kernel (H, 4H),
    bias (4H,)] (no bias when ``bias=False``). For a bidirectional LSTM each
    item is for ``keras.layers.Bidirectional(keras.layers.LSTM(...))``: the
    forward layer's three arrays, then the backward layer's.

    Keras's LSTM has no projection and no peepholes (nor the other variants):
    an LSTM with proj_size, peephole, input_forget, clip or ablate raises
    ValueError. Keras takes its input batch-first, (N, T, I).
    """
    if not isinstance(lstm, LSTM):
        raise TypeError(f"to_keras: expected an npylstm.LSTM, got {type(lstm).__name__}")
    _refuse("Keras's LSTM", lstm, ("proj_size", "peephole", "input_forget", "clip", "ablate"))
    layers = []
    for k in range(lstm.num_layers):
        weights = []
        for d in range(2 if lstm.bidirectional else 1):
            w = _direction_weights(lstm, k, d, ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            weights += torch_to_keras(**w)
        layers.append(weights)
    return layers


_KERAS_ACCEPTS = ("from_keras accepts to_keras's output (a list with one list of arrays per "
                  "layer), a Keras LSTM layer, a Keras Bidirectional(LSTM) layer, a list of "
                  "such layers, or a Keras model whose LSTM layers are stacked")


def _keras_class(obj):
    """Which Keras class obj is an instance of: "LSTM", "Bidirectional", "Model" or None.

    By the names in its class hierarchy, so that arrays never import keras.
    """
    for cls in type(obj).__mro__:
        if cls.__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow") \
                and cls.__name__ in ("LSTM", "Bidirectional", "Model"):
            return cls.__name__
    return None


def _keras_layers(layers):
    """The Keras LSTM or Bidirectional layers that ``from_keras``'s argument stands for, else None.

    A layer stands for itself, a model for its LSTM layers (which must follow
    one another in ``model.layers``, all but the last returning sequences), a
    list of layers for its items. Lists of arrays (to_keras's output): None.
    Raises ValueError for anything else, and for a layer npylstm cannot hold.
    """
    kind = _keras_class(layers)
    if kind == "Model":
        found = [(k, layer) for k, layer in enumerate(layers.layers)
                 if _keras_class(layer) in ("LSTM", "Bidirectional")]
        if not found:
            raise ValueError(f"from_keras: the Keras model {layers.name!r} has no LSTM or "
                             f"Bidirectional layer; {_KERAS_ACCEPTS}")
        positions = [k for k, _ in found]
        if positions != list(range(positions[0], positions[0] + len(found))):
            raise ValueError(f"from_keras: the LSTM layers of the Keras model {layers.name!r} are "
                             f"not stacked (other layers between them, at positions {positions} "
                             f"of model.layers); {_KERAS_ACCEPTS}")
        stack = [layer for _, layer in found]
    elif kind is not None:
        stack = [layers]
    elif isinstance(layers, (list, tuple)) and layers \
            and all(_keras_class(item) in ("LSTM", "Bidirectional") for item in layers):
        stack = list(layers)
    elif isinstance(layers, (list, tuple)) and all(
            isinstance(item, (list, tuple)) and _keras_class(item) is None for item in layers):
        return None                                   # to_keras's output: lists of arrays
    else:
        raise ValueError(f"from_keras: got {type(layers).__name__}; {_KERAS_ACCEPTS}")
    if kind == "Model" or len(stack) > 1:
        for layer in stack[:-1]:
            if not getattr(layer, "return_sequences", True):
                raise ValueError(f"from_keras: Keras layer {layer.name!r} does not return its "
                                 f"sequence (return_sequences=False), so no layer can be stacked "
                                 f"on it")
    for layer in stack:
        if _keras_class(layer) == "Bidirectional":
            if layer.merge_mode != "concat":
                raise ValueError(f"from_keras: Keras layer {layer.name!r} has merge_mode="
                                 f"{layer.merge_mode!r}; npylstm concatenates the two directions "
                                 f"(merge_mode='concat')")
            cells = [(layer.forward_layer, False), (layer.backward_layer, True)]
        else:
            cells = [(layer, False)]
        for cell, backwards in cells:
            config = cell.get_config()
            for option, expected in [("activation", "tanh"), ("recurrent_activation", "sigmoid"),
                                     ("go_backwards", backwards)]:
                if config.get(option, expected) != expected:
                    raise ValueError(f"from_keras: Keras layer {cell.name!r} has {option}="
                                     f"{config[option]!r}; npylstm's LSTM needs "
                                     f"{option}={expected!r}")
        if not layer.get_weights():
            raise ValueError(f"from_keras: Keras layer {layer.name!r} has no weights yet; build "
                             f"it (call it on an input) first")
    return stack


def from_keras(layers, *, bidirectional=False, dtype=np.float32, batch_first=False):
    """An npylstm.LSTM with the weights of stacked Keras LSTM layers (inverse of to_keras).

    Inputs:
    - layers: one of
      - to_keras's output: one item per layer, each the list of arrays that
        the Keras layer's ``get_weights()`` returns: [kernel (I, 4H),
        recurrent_kernel (H, 4H), bias (4H,)], the bias optional; for
        ``bidirectional`` the forward layer's arrays, then the backward
        layer's;
      - a Keras LSTM layer, or a Keras Bidirectional layer around one (then
        ``bidirectional`` is inferred), or a list of such layers, stacked;
      - a Keras model whose LSTM (or Bidirectional) layers follow one another
        in ``model.layers``: those layers, in that order (other layers, such
        as a Dense head after them, are not part of the LSTM).
      Keras layers must be built, with tanh and sigmoid activations, and
      Bidirectional ones with merge_mode "concat".
    - bidirectional: whether the arrays come from keras.layers.Bidirectional
      (with Keras layers it is read from the layers)
    - dtype: float32 or float64
    - batch_first: the returned LSTM takes (N, T, I) input, as Keras does

    Keras's one bias goes into bias_ih_l{k}, and bias_hh_l{k} is zero (only
    their sum matters). Raises ValueError for anything else than the above
    (the message says what is accepted) and for arrays of inconsistent shapes.
    """
    stack = _keras_layers(layers)
    if stack is not None:
        kinds = {_keras_class(layer) for layer in stack}
        if len(kinds) > 1:
            raise ValueError("from_keras: the layers mix LSTM and Bidirectional; npylstm's layers "
                             "are all one or all the other")
        if bidirectional and kinds == {"LSTM"}:
            raise ValueError("from_keras: bidirectional=True, but the Keras layers are LSTM "
                             "layers, not Bidirectional ones")
        bidirectional = kinds == {"Bidirectional"}
        layers = [layer.get_weights() for layer in stack]
    D = 2 if bidirectional else 1
    items = [list(item) for item in layers]
    if not items:
        raise ValueError("from_keras: expected at least one layer, got none")
    per_direction = len(items[0]) // D
    if per_direction not in (2, 3) or any(len(item) != D * per_direction for item in items):
        raise ValueError(
            f"from_keras: expected {2 * D} or {3 * D} arrays per layer "
            f"({'forward then backward: ' if D == 2 else ''}kernel, recurrent_kernel[, bias]), "
            f"got {[len(item) for item in items]}")
    kernel = np.asarray(items[0][0])
    if kernel.ndim != 2 or kernel.shape[1] % 4:
        raise ValueError(f"from_keras: expected layer 0's kernel of shape (I, 4H), "
                         f"got {kernel.shape}")
    I, H = kernel.shape[0], kernel.shape[1] // 4
    lstm = LSTM(I, H, num_layers=len(items), bias=per_direction == 3, batch_first=batch_first,
                bidirectional=bidirectional, dtype=dtype)
    state = {}
    for k, item in enumerate(items):
        layer_input = I if k == 0 else D * H
        expected = [(layer_input, 4 * H), (H, 4 * H), (4 * H,)][:per_direction]
        for d in range(D):
            arrays = [np.asarray(a) for a in item[d * per_direction:(d + 1) * per_direction]]
            for name, array, shape in zip(("kernel", "recurrent_kernel", "bias"), arrays, expected):
                if array.shape != shape:
                    direction = ("forward ", "backward ")[d] if D == 2 else ""
                    raise ValueError(f"from_keras: expected layer {k}'s {direction}{name} of "
                                     f"shape {shape}, got {array.shape}")
            for name, value in keras_to_torch(*arrays).items():
                state[name + _suffix(k, d)] = value
    lstm.load_state_dict(state)
    return lstm


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as error:
        raise ImportError('npylstm.interop needs the onnx package for ONNX files: '
                          'pip install "npylstm[onnx]"') from error
    return onnx, helper, numpy_helper


def _config(module):
    """What load_onnx needs to rebuild ``module``, as a JSON-able dict."""
    lstm = module.lstm if isinstance(module, LSTMRegressor) else module
    variant = _variant(lstm)
    config = dict(module=type(module).__name__, input_size=lstm.input_size,
                  hidden_size=lstm.hidden_size, num_layers=lstm.num_layers, bias=lstm.bias,
                  batch_first=lstm.batch_first, dropout=lstm.dropout,
                  bidirectional=lstm.bidirectional, dtype=lstm.dtype.name)
    if variant["peephole"] or variant["input_forget"] or variant["clip"] is not None:
        config.update(peephole=variant["peephole"], input_forget=variant["input_forget"],
                      clip=variant["clip"])
    if isinstance(module, LSTMRegressor):
        config["output_size"] = module.linear.out_features
    return config


class _Graph:
    """The nodes and initializers of an ONNX graph under construction."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []

    def const(self, name, array):
        """An initializer; returns its name."""
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, outputs, **attributes):
        """A node; returns the name of its first output."""
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=f"{op}_{len(self.nodes)}",
                                                **attributes))
        return outputs[0]


def _onnx_lstm_layer(graph, lstm, k, x, initial_state):
    """One ONNX LSTM node for layer k (both directions) and the reshape back to torch's layout.

    Inputs: x, the name of a (T, N, I or D*H) tensor. With ``initial_state``
    the node takes rows k*D .. k*D+D-1 of the graph inputs h0 and c0.
    Returns the names of the layer's output (T, N, D*H), Y_h and Y_c (D, N, H).
    """
    variant, D = _variant(lstm), 2 if lstm.bidirectional else 1
    peepholes = lambda d: [getattr(lstm, name + _suffix(k, d)).data
                           for name in ("weight_ci", "weight_cf", "weight_co")]
    directions = [torch_to_onnx(**_direction_weights(lstm, k, d, ("weight_ih", "weight_hh",
                                                                  "bias_ih", "bias_hh")),
                                peepholes=peepholes(d) if variant["peephole"] else None)
                  for d in range(D)]
    # W (D, 4H, I), R (D, 4H, H), B (D, 8H), P (D, 3H): the directions stacked
    W, R, B, P = (np.stack(arrays) if arrays[0] is not None else None
                  for arrays in zip(*directions))
    inputs = [x, graph.const(f"W_l{k}", W), graph.const(f"R_l{k}", R),
              graph.const(f"B_l{k}", B) if B is not None else "", "", "", "",
              graph.const(f"P_l{k}", P) if P is not None else ""]
    if initial_state:
        rows = [graph.const(f"{name}_l{k}", np.array(value, np.int64)) for name, value in (
            ("state_start", [k * D]), ("state_end", [(k + 1) * D]), ("state_axis", [0]))]
        inputs[5] = graph.node("Slice", ["h0", *rows], [f"h0_l{k}"])      # (D, N, H)
        inputs[6] = graph.node("Slice", ["c0", *rows], [f"c0_l{k}"])
    while inputs[-1] == "":                                   # trailing optional inputs go
        inputs.pop()
    attributes = dict(hidden_size=lstm.hidden_size,
                      direction="bidirectional" if D == 2 else "forward")
    if variant["input_forget"]:
        attributes["input_forget"] = 1
    if variant["clip"] is not None:
        attributes["clip"] = float(variant["clip"])
    y = graph.node("LSTM", inputs, [f"Y_l{k}", f"Y_h_l{k}", f"Y_c_l{k}"], **attributes)
    y = graph.node("Transpose", [y], [f"Y_l{k}_tndh"], perm=[0, 2, 1, 3])   # (T, N, D, H)
    output = graph.node("Reshape", [y, graph.const(f"shape_l{k}", np.array([0, 0, -1], np.int64))],
                        [f"output_l{k}"])                                     # (T, N, D*H)
    return output, f"Y_h_l{k}", f"Y_c_l{k}"


def export_onnx(module, path, *, initial_state=False):
    """Write ``module`` (an npylstm.LSTM or LSTMRegressor) as an ONNX model file.

    The graph:
    - input ``input``: (T, N, I), or (N, T, I) with batch_first, T and N dynamic;
      with ``initial_state=True`` (LSTM only) also ``h0`` (D*L, N, H) and
      ``c0`` (D*L, N, H), torch's h_0 and c_0
    - one ONNX LSTM node per layer (both directions in one node), in the
      module's dtype; its Y (T, D, N, H) is transposed and reshaped to
      torch's (T, N, D*H) before the next layer
    - outputs ``output``, ``h_n``, ``c_n`` in torch's shapes (LSTM), or
      ``prediction`` (N, output_size) for an LSTMRegressor: a Gemm on the
      last step of the LSTM's output
    - peephole, input_forget and clip map onto the LSTM node's P input and its
      input_forget and clip attributes

    Dropout is a training-time operation and is not part of the graph (it is
    recorded so that load_onnx rebuilds the same module). The configuration
    is stored in the model's metadata_props under "npylstm". onnxruntime's
    LSTM runs float32 only; a float64 module gives a valid float64 model
    (onnx.reference.ReferenceEvaluator runs it).

    Raises ValueError for what ONNX's LSTM cannot express: proj_size and gate
    ablations. Needs the onnx package (pip install "npylstm[onnx]").
    """
    onnx, helper, numpy_helper = _import_onnx()
    if isinstance(module, LSTMRegressor):
        lstm, regressor = module.lstm, module
        if initial_state:
            raise ValueError("export_onnx: initial_state=True needs an LSTM; an LSTMRegressor "
                             "always starts from zero states")
    elif isinstance(module, LSTM):
        lstm, regressor = module, None
    else:
        raise TypeError(f"export_onnx: expected an npylstm.LSTM or LSTMRegressor, "
                        f"got {type(module).__name__}")
    _refuse("ONNX's LSTM", lstm, ("proj_size", "ablate"))

    elem = helper.np_dtype_to_tensor_dtype(lstm.dtype)
    I, H, L, D = lstm.input_size, lstm.hidden_size, lstm.num_layers, 2 if lstm.bidirectional else 1
    tensor = lambda name, shape: helper.make_tensor_value_info(name, elem, shape)
    graph = _Graph(helper, numpy_helper)

    graph_inputs = [tensor("input", ["N", "T", I] if lstm.batch_first else ["T", "N", I])]
    if initial_state:
        graph_inputs += [tensor("h0", [D * L, "N", H]), tensor("c0", [D * L, "N", H])]
    x = "input"
    if lstm.batch_first:
        x = graph.node("Transpose", [x], ["input_time_major"], perm=[1, 0, 2])   # (T, N, I)
    h_n, c_n = [], []
    for k in range(L):
        x, y_h, y_c = _onnx_lstm_layer(graph, lstm, k, x, initial_state)
        h_n.append(y_h)
        c_n.append(y_c)

    if regressor is None:
        if lstm.batch_first:
            graph.node("Transpose", [x], ["output"], perm=[1, 0, 2])           # (N, T, D*H)
        else:
            graph.node("Identity", [x], ["output"])
        graph.node("Concat", h_n, ["h_n"], axis=0)                             # (D*L, N, H)
        graph.node("Concat", c_n, ["c_n"], axis=0)
        graph_outputs = [tensor("output", ["N", "T", D * H] if lstm.batch_first
                                else ["T", "N", D * H]),
                         tensor("h_n", [D * L, "N", H]), tensor("c_n", [D * L, "N", H])]
    else:
        last = graph.node("Gather", [x, graph.const("last_step", np.array(-1, np.int64))],
                          ["last_step_output"], axis=0)                       # (N, H)
        linear = regressor.linear
        graph.node("Gemm", [last, graph.const("linear.weight", linear.weight.data),
                            graph.const("linear.bias", linear.bias.data)], ["prediction"],
                   transB=1)                                                  # (N, output_size)
        graph_outputs = [tensor("prediction", ["N", linear.out_features])]

    model = helper.make_model(
        helper.make_graph(graph.nodes, "npylstm", graph_inputs, graph_outputs,
                          initializer=graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="npylstm")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {METADATA_KEY: json.dumps(_config(module))})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _onnx_variant(model, helper, path):
    """The variant options of the graph's LSTM nodes: peephole (a P input), input_forget, clip.

    export_onnx gives every layer the same options; a graph whose nodes differ is refused."""
    found = []
    for node in model.graph.node:
        if node.op_type == "LSTM":
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            clip = attributes.get("clip")
            found.append(dict(peephole=len(node.input) > 7 and node.input[7] != "",
                              input_forget=bool(attributes.get("input_forget", 0)),
                              clip=None if clip is None else float(clip)))
    if not found:
        raise ValueError(f"load_onnx: {path} has no LSTM node")
    if any(options != found[0] for options in found):
        raise ValueError(f"load_onnx: the LSTM nodes of {path} differ in their options: {found}")
    return found[0]


def load_onnx(path):
    """The npylstm.LSTM (or LSTMRegressor) stored in a file that export_onnx wrote.

    The configuration comes from the model's metadata_props ("npylstm"), the
    weights from its initializers, converted back to torch's layout with
    onnx_to_torch; the state_dict equals the exported module's exactly.

    Raises ValueError, naming what it could not read, for a file that is not
    ONNX, has no npylstm metadata, or lacks an initializer or has one of the
    wrong shape. Needs the onnx package (pip install "npylstm[onnx]").
    """
    onnx, helper, numpy_helper = _import_onnx()
    try:
        model = onnx.load(str(path))
    except Exception as error:                     # protobuf raises several kinds
        raise ValueError(f"load_onnx: could not read {path} as an ONNX model: {error}") from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"load_onnx: {path} was not written by npylstm.interop.export_onnx: its "
                         f"metadata_props have no {METADATA_KEY!r} entry (found {sorted(props)})")
    try:
        config = json.loads(props[METADATA_KEY])
        kind = config.pop("module")
        dtype = np.dtype(config.pop("dtype"))
        output_size = config.pop("output_size", None)
        recorded = {k: config.pop(k) for k in ("peephole", "input_forget", "clip") if k in config}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"load_onnx: could not read the {METADATA_KEY!r} metadata of {path}: "
                         f"{error!r}") from None
    variant = _onnx_variant(model, helper, path)
    if recorded:
        # ONNX stores clip as a float32 attribute; the metadata keeps the exact value.
        same = dict(recorded, clip=None if recorded.get("clip") is None
                    else float(np.float32(recorded["clip"])))
        if same != variant:
            raise ValueError(f"load_onnx: the LSTM nodes of {path} say {variant}, its "
                             f"{METADATA_KEY!r} metadata says {recorded}")
        variant["clip"] = recorded.get("clip")
    if kind == "LSTMRegressor":
        module = LSTMRegressor(config["input_size"], config["hidden_size"], output_size,
                               config["num_layers"], dtype=dtype, **variant)
        lstm, prefix = module.lstm, "lstm."
    elif kind == "LSTM":
        lstm = module = LSTM(**config, dtype=dtype, **variant)
        prefix = ""
    else:
        raise ValueError(f"load_onnx: {path} holds an unknown module {kind!r}, "
                         f"expected 'LSTM' or 'LSTMRegressor'")

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    def init(name, shape):
        if name not in inits:
            raise ValueError(f"load_onnx: {path} has no initializer {name!r}")
        if inits[name].shape != shape:
            raise ValueError(f"load_onnx: expected initializer {name!r} of shape {shape} "
                             f"in {path}, got {inits[name].shape}")
        return inits[name]

    H, D = lstm.hidden_size, 2 if lstm.bidirectional else 1
    state = {}
    for k in range(lstm.num_layers):
        I = lstm.input_size if k == 0 else D * H
        W, R = init(f"W_l{k}", (D, 4 * H, I)), init(f"R_l{k}", (D, 4 * H, H))
        B = init(f"B_l{k}", (D, 8 * H)) if lstm.bias else [None] * D
        P = init(f"P_l{k}", (D, 3 * H)) if variant.get("peephole") else [None] * D
        for d in range(D):
            for name, value in onnx_to_torch(W[d], R[d], B[d], P[d]).items():
                state[prefix + name + _suffix(k, d)] = value
    if kind == "LSTMRegressor":
        state["linear.weight"] = init("linear.weight", (output_size, H))
        state["linear.bias"] = init("linear.bias", (output_size,))
    module.load_state_dict(state)
    return module
