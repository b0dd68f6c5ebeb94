"""One LSTM layer in one direction over a whole sequence: forward and BPTT.

The equations are those of ``cell.py`` (docs/lstm.md, eq. 1-16; BPTT over the
sequence eq. 17-19, projection eq. 20-21), applied at every time step. This
file is where the performance tricks live; each keeps the arithmetic of the
plain cell up to floating-point round-off:

1. One GEMM per step for the whole pre-activation. Eq. 1,
   z = x W_ih^T + b_ih + h_prev W_hh^T + b_hh, is one product of the stacked
   matrix W = [W_hh | W_ih | b_ih + b_hh] (4H, K) with the stacked inputs
   [h_prev, x, 1] (K = Hout + I + 1). All four gates, the input, the
   recurrence and both biases come out of one BLAS call, with no separate
   additions. (Projecting the inputs of all T steps in one GEMM before the
   loop was measured slower here: OpenBLAS is slow for the thin K = I
   product, 8 ms at the seed's shape, and the hoisted result costs a pass
   over memory to add back at every step.)
2. Feature-major layout: one column per sequence. Inside this file a step
   computes the transpose of eq. 1, z^T = W [h_prev, x, 1]^T, (4H, N): the
   column-vector form of the textbooks. Then each gate is one contiguous
   (H, N) block of memory, and the elementwise work of a step runs over
   contiguous blocks instead of four interleaved column ranges of an
   (N, 4H) array, about 3x faster at the seed's shape. Arrays come in and
   go out in torch's (T, N, .) layout; the transposes cost one copy each.
3. Gate order (i, f, o, g) inside this file. torch stores the four gate
   blocks as (i, f, g, o); swapping the last two blocks makes the three
   sigmoid gates one contiguous (3H, N) block, so each step makes one call
   for them instead of three. Weights are reordered on the way in and
   gradients on the way out, so callers only ever see torch's order.
4. Sigmoid through tanh, with the 1/2 folded into the weights:
   sigmoid(z) = 0.5 * tanh(z / 2) + 0.5. The rows of W that feed sigmoid
   gates are multiplied by 0.5 once per call (exact in binary floating
   point), so one tanh over all 4H pre-activations gives tanh(z_g) and
   tanh(z/2) for the other gates at once.
5. One GEMM for every weight gradient, after the loop: since z_t = W a_t with
   a_t = [h_prev, x_t, 1]^T, dW = sum_t dz_t a_t^T, which is
   [dW_hh | dW_ih | db] at once. The caches keep time and batch side by
   side, (4H, T, N) and (K, T, N), so the sum over t is the inner dimension
   of one (4H, T*N) x (T*N, K) product. The input gradient of all steps,
   dx_t = W_ih^T dz_t, is one more GEMM.
6. In-place ufuncs (``out=``) into preallocated (T, N, .) caches, which come
   from a ``workspace`` dict reused across calls, so a training loop does
   not page-fault fresh memory on every step.
7. Backward reads the activations saved by forward (i, f, o, g, c, tanh(c)
   and the inputs of every step) and recomputes nothing.

Variable-length batches follow torch's PackedSequence: the batch is sorted by
length, longest first, and ``batch_sizes[t]`` says how many sequences are
still running at step t. Step t then touches sequences ``[:batch_sizes[t]]`` only;
the others keep their state, so every sequence's final state stays where
it was at its own last step, with no masks at all.

Shapes: T steps, N batch, I input size, H hidden size, Hout = P or H,
K = Hout + I (+ 1 with a bias). Comments on lines give the feature-major
shapes used inside this file, such as (4H, n).
"""
import numpy as np


def _swap_go(w, H):
    """Swap the g and o blocks of a (4H, ...) array: (i, f, g, o) <-> (i, f, o, g)."""
    return np.concatenate([w[:2 * H], w[3 * H:], w[2 * H:3 * H]])


def _stacked_weights(weight_ih, weight_hh, bias_ih, bias_hh):
    """W = [W_hh | W_ih | b_ih + b_hh], (4H, K), in the gate order (i, f, o, g)."""
    H = weight_hh.shape[0] // 4
    blocks = [weight_hh, weight_ih]
    if bias_ih is not None:
        blocks.append((bias_ih + bias_hh)[:, None])
    return _swap_go(np.concatenate(blocks, axis=1), H)


def _buffer(workspace, name, shape, dtype, zero=False):
    """An array of this shape, reused from ``workspace`` when one fits."""
    if workspace is None:
        return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    buf = workspace.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = workspace[name] = np.empty(shape, dtype)
    if zero:
        buf.fill(0)
    return buf


def _step_order(T, reverse, batch_sizes, N):
    """(t, n, t_prev, n_prev) for each step in the order forward visits them:
    step t runs rows [:n]; the step before it was t_prev (None at the start)
    with n_prev rows."""
    times = range(T - 1, -1, -1) if reverse else range(T)
    sizes = [N] * T if batch_sizes is None else [int(b) for b in batch_sizes]
    order, t_prev, n_prev = [], None, 0
    for t in times:
        order.append((t, sizes[t], t_prev, n_prev))
        t_prev, n_prev = t, sizes[t]
    return order


def _prev(states, t_prev, n, n_prev, initial):
    """State columns [:n] entering a step: those of the previous step, and
    the initial state for sequences that start only now (reverse direction
    with lengths, where shorter sequences start later). states: (T, H, N),
    initial: (H, N)."""
    if t_prev is None:
        return initial[:, :n]
    if n <= n_prev:
        return states[t_prev, :, :n]
    return np.concatenate([states[t_prev, :, :n_prev], initial[:, n_prev:n]], axis=1)


def _lengths_from_batch_sizes(batch_sizes, N):
    """(N,) length of each (sorted) sequence: how many steps had it running."""
    return np.count_nonzero(np.arange(N)[:, None] < np.asarray(batch_sizes)[None, :], axis=1)


def lstm_layer_forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None,
                       bias_hh=None, weight_hr=None, reverse=False,
                       batch_sizes=None, workspace=None, out=None):
    """Run one LSTM layer over a sequence in one direction.

    Inputs:
    - x: (T, N, I); with batch_sizes, sorted longest first
    - h0: (N, Hout); c0: (N, H)
    - weight_ih: (4H, I); weight_hh: (4H, Hout); bias_ih, bias_hh: (4H,) or
      None; weight_hr: (P, H) or None, all in torch's layout and gate order
    - reverse: run from the last step to the first
    - batch_sizes: None, or (T,) non-increasing counts of running sequences
    - workspace: None, or a dict whose arrays are reused for the caches (a
      later call with the same workspace overwrites this call's cache)
    - out: None, or a (T, N, Hout) array (a view is fine, e.g. one half of a
      bidirectional output) to write the output into

    Returns:
    - output: (T, N, Hout), the hidden state at every step; zero at steps
      past a sequence's length
    - h_n: (N, Hout), c_n: (N, H), each sequence's state after its last step
      (after step 0 when reverse)
    - cache: for lstm_layer_backward
    """
    T, N, I = x.shape
    H = weight_hh.shape[0] // 4
    Hout = weight_hh.shape[1]
    dtype = x.dtype
    packed = batch_sizes is not None
    weights = _stacked_weights(weight_ih, weight_hh, bias_ih, bias_hh)   # (4H, K)
    K = weights.shape[1]
    half = np.ones((4 * H, 1), dtype)
    half[:3 * H] = 0.5                                           # trick 4
    weights_half = weights * half

    # inputs[:, t] = [h_prev, x_t, 1]^T, what step t multiplies by W (trick 1).
    # With lengths, columns of sequences that do not run at a step stay zero,
    # so that they add nothing to the weight gradients after the loop.
    inputs = _buffer(workspace, "inputs", (K, T, N), dtype, zero=packed)
    if packed:
        for t, n in enumerate(batch_sizes):
            inputs[Hout:Hout + I, t, :n] = x[t, :n].T
    else:
        inputs[Hout:Hout + I] = x.transpose(2, 0, 1)
    if bias_ih is not None:
        inputs[K - 1] = 1
    gates = _buffer(workspace, "gates", (T, 4 * H, N), dtype)
    cells = _buffer(workspace, "cells", (T, H, N), dtype)
    tanh_cells = _buffer(workspace, "tanh_cells", (T, H, N), dtype)
    hidden = _buffer(workspace, "hidden", (T, Hout, N), dtype, zero=packed)       # h_t^T
    h_cells = hidden if weight_hr is None else _buffer(
        workspace, "h_cells", (H, T, N), dtype, zero=packed).transpose(1, 0, 2)   # (o * tanh(c))^T
    i_times_g = _buffer(workspace, "i_times_g", (H, N), dtype)
    h0_t, c0_t = h0.T, c0.T                                      # (Hout, N), (H, N)

    order = _step_order(T, reverse, batch_sizes, N)
    for t, n, t_prev, n_prev in order:
        a = inputs[:, t, :n]                                     # (K, n)
        m = min(n, n_prev)
        if m:
            a[:Hout, :m] = hidden[t_prev, :, :m]                 # h_prev from the step before
        if m < n:
            a[:Hout, m:] = h0_t[:, m:n]                          # ... or h0 where a sequence starts
        z = np.matmul(weights_half, a, out=gates[t, :, :n])      # (4H, n)
        np.tanh(z, out=z)                                        # g, and tanh(z/2) for i, f, o
        sig = z[:3 * H]
        sig *= 0.5
        sig += 0.5                                               # i, f, o = sigmoid(z)
        i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        c_prev = _prev(cells, t_prev, n, n_prev, c0_t)
        c = np.multiply(f, c_prev, out=cells[t, :, :n])
        c += np.multiply(i, g, out=i_times_g[:, :n])             # c = f * c_prev + i * g
        tanh_c = np.tanh(c, out=tanh_cells[t, :, :n])
        np.multiply(o, tanh_c, out=h_cells[t, :, :n])            # h = o * tanh(c)
        if weight_hr is not None:
            np.matmul(weight_hr, h_cells[t, :, :n], out=hidden[t, :, :n])  # h = W_hr (o * tanh(c))

    output = np.empty((T, N, Hout), dtype) if out is None else out
    output[...] = hidden.transpose(0, 2, 1)
    if not packed or reverse:
        # Every sequence is running at the last step visited.
        last = order[-1][0]
        h_n, c_n = hidden[last].T.copy(), cells[last].T.copy()
    else:
        # Forward direction: sequence b last ran at step length_b - 1.
        lengths = _lengths_from_batch_sizes(batch_sizes, N)
        columns = np.arange(N)
        h_n, c_n = hidden[lengths - 1, :, columns], cells[lengths - 1, :, columns]

    cache = dict(inputs=inputs, gates=gates, cells=cells, tanh_cells=tanh_cells, c0_t=c0_t,
                 h_cells=h_cells if weight_hr is not None else None, weights=weights,
                 weight_hr=weight_hr, has_bias=bias_ih is not None, I=I, order=order,
                 packed=packed)
    return output, h_n, c_n, cache


def lstm_layer_backward(grad_output, grad_h_n, grad_c_n, cache, workspace=None):
    """Backpropagation through time for one layer and direction.

    Inputs:
    - grad_output: (T, N, Hout), gradient with respect to ``output``, or None
      for zero; values at steps past a sequence's length are ignored
    - grad_h_n: (N, Hout) or None; grad_c_n: (N, H) or None
    - cache: from lstm_layer_forward (not modified, so backward may run again)
    - workspace: None, or a dict whose arrays are reused

    Returns:
    - grad_x: (T, N, I); zero at steps past a sequence's length
    - grad_h0: (N, Hout); grad_c0: (N, H)
    - grads: dict, in torch's layout and gate order: "weight_ih" (4H, I),
      "weight_hh" (4H, Hout), "bias_ih" and "bias_hh" (4H,) with a bias,
      "weight_hr" (P, H) with a projection
    """
    inputs, gates, cells, tanh_cells = cache["inputs"], cache["gates"], cache["cells"], cache["tanh_cells"]
    weights, weight_hr, I = cache["weights"], cache["weight_hr"], cache["I"]
    K, T, N = inputs.shape
    H = cells.shape[1]
    Hout = weights.shape[1] - I - (1 if cache["has_bias"] else 0)
    dtype = inputs.dtype
    packed = cache["packed"]
    weight_hh_t = np.ascontiguousarray(weights[:, :Hout].T)      # (Hout, 4H), order (i, f, o, g)

    # grad_z[:, t] = dLoss/dz_t; columns of steps that a sequence does not
    # reach stay zero, so the GEMMs after the loop can sum over all of them.
    grad_z = _buffer(workspace, "grad_z", (4 * H, T, N), dtype, zero=packed)
    if grad_output is not None:
        grad_out_t = _buffer(workspace, "grad_out_t", (T, Hout, N), dtype)
        grad_out_t[...] = grad_output.transpose(0, 2, 1)
    grad_h = np.zeros((Hout, N), dtype) if grad_h_n is None else np.array(grad_h_n.T, dtype, order="C")
    grad_c = np.zeros((H, N), dtype) if grad_c_n is None else np.array(grad_c_n.T, dtype, order="C")
    if weight_hr is not None:
        # dLoss/dh at every step, kept for dW_hr = sum_t dh_t (o * tanh(c))_t^T.
        grad_h_all = _buffer(workspace, "grad_h_all", (Hout, T, N), dtype, zero=packed)
        grad_h_cell = _buffer(workspace, "grad_h_cell", (H, N), dtype)
    tmp_h = _buffer(workspace, "tmp_h", (H, N), dtype)
    tmp_3h = _buffer(workspace, "tmp_3h", (3 * H, N), dtype)
    # dz of one step is built in a small contiguous buffer that stays in
    # cache, then copied once into its strided slab of grad_z.
    grad_z_step = _buffer(workspace, "grad_z_step", (4 * H, N), dtype)

    for t, n, t_prev, n_prev in reversed(cache["order"]):
        z = gates[t, :, :n]
        i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        dz = grad_z_step[:, :n]                                  # (4H, n)
        d_i, d_f, d_o, d_g = dz[:H], dz[H:2 * H], dz[2 * H:3 * H], dz[3 * H:]
        tanh_c = tanh_cells[t, :, :n]
        c_prev = _prev(cells, t_prev, n, n_prev, cache["c0_t"])
        tmp = tmp_h[:, :n]
        dh = grad_h[:, :n]
        if grad_output is not None:
            dh += grad_out_t[t, :, :n]                           # from the output and from step t+1
        if weight_hr is not None:
            grad_h_all[:, t, :n] = dh
            dh = np.matmul(weight_hr.T, dh, out=grad_h_cell[:, :n])  # dh_cell = W_hr^T dh
        dc = grad_c[:, :n]
        np.multiply(dh, tanh_c, out=d_o)                         # do = dh * tanh(c)
        np.multiply(tanh_c, tanh_c, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp                                                # dc += dh * o * (1 - tanh(c)^2)
        np.multiply(dc, g, out=d_i)                              # di = dc * g
        np.multiply(dc, c_prev, out=d_f)                         # df = dc * c_prev
        np.multiply(dc, i, out=d_g)                              # dg = dc * i
        dc *= f                                                  # dc_prev = dc * f
        sig = z[:3 * H]
        tmp3 = np.subtract(1, sig, out=tmp_3h[:, :n])
        tmp3 *= sig
        dz[:3 * H] *= tmp3                                       # d(i, f, o) *= s (1 - s)
        np.multiply(g, g, out=tmp)
        np.subtract(1, tmp, out=tmp)
        d_g *= tmp                                               # dg *= 1 - g^2
        grad_z[:, t, :n] = dz
        np.matmul(weight_hh_t, dz, out=grad_h[:, :n])            # dh_prev = W_hh^T dz

    # Trick 5: dW = sum_t dz_t [h_prev, x_t, 1] = [dW_hh | dW_ih | db], one GEMM.
    grad_z_2d = grad_z.reshape(4 * H, T * N)
    grad_w = _swap_go(grad_z_2d @ inputs.reshape(K, T * N).T, H)  # (4H, K), torch's order
    grad_x = (weights[:, Hout:Hout + I].T @ grad_z_2d).reshape(I, T, N).transpose(1, 2, 0)
    grads = {"weight_ih": np.ascontiguousarray(grad_w[:, Hout:Hout + I]),
             "weight_hh": np.ascontiguousarray(grad_w[:, :Hout])}
    if cache["has_bias"]:
        grads["bias_ih"] = grad_w[:, K - 1].copy()
        grads["bias_hh"] = grad_w[:, K - 1].copy()
    if weight_hr is not None:
        h_cells = cache["h_cells"].transpose(1, 0, 2)            # (H, T, N)
        grads["weight_hr"] = grad_h_all.reshape(Hout, T * N) @ h_cells.reshape(H, T * N).T
    return np.ascontiguousarray(grad_x), grad_h.T.copy(), grad_c.T.copy(), grads
