"""One LSTM layer in one direction over a whole sequence: forward and BPTT.

The equations are those of ``cell.py`` (docs/lstm.md, eq. 1-16), applied at
every time step. This file is where the performance tricks live; each keeps
the arithmetic of the plain cell up to floating-point round-off:

1. Gate order (i, f, o, g) inside this file. torch stores the four gate
   blocks as (i, f, g, o); swapping the last two blocks makes the three
   sigmoid gates one contiguous (N, 3H) block, so each step makes one call
   for them instead of three. Weights are reordered on the way in and
   gradients on the way out, so callers only ever see torch's order.
2. Sigmoid through tanh, with the 1/2 folded into the weights:
   sigmoid(z) = 0.5 * tanh(z / 2) + 0.5. The rows of W_ih, W_hh and the
   biases that feed sigmoid gates are multiplied by 0.5 once per call (exact
   in binary floating point), so one tanh over all 4H pre-activations gives
   tanh(z_g) and tanh(z/2) for the other gates at once.
3. The input projection x_t W_ih^T + b for all T steps is one GEMM before the
   time loop; only h_prev W_hh^T stays inside it.
4. The weight gradients sum_t dz_t^T x_t and sum_t dz_t^T h_{t-1} are one
   GEMM each after the loop, over the (T*N, 4H) stack of gate gradients.
5. In-place ufuncs (``out=``) into preallocated (T, N, .) caches, which can
   come from a ``workspace`` dict reused across calls, so a training loop
   does not page-fault fresh memory on every step.
6. Backward reads the activations saved by forward (i, f, o, g, c and
   tanh(c)) and recomputes nothing. Steps where grad_output is zero (a loss
   on the last step only) skip the addition of grad_output.
7. Batch rows in parallel threads (``_parallel_rows``). The recurrence never
   mixes rows of the batch: row b of every step depends on row b of the
   step before only. So the time loop runs on blocks of rows in as many
   threads as numpy's BLAS may use, each block with single-threaded BLAS,
   and both the per-step GEMMs and the elementwise work use every core with
   no synchronisation inside the loop. The GEMMs before and after the loop
   run on the whole batch with BLAS's own threads. This needs threadpoolctl
   (optional) to switch BLAS to one thread meanwhile; without it, or for
   small batches, the loop runs on the whole batch in the calling thread.
   Each row sees the same arithmetic either way. It is OFF by default
   (``PARALLEL_ROWS = False``): on the 2-core benchmark machine it made
   forward+backward slower (seed shape 83 ms against 67 ms, docs/benchmarks.md),
   most likely from GIL hand-offs between the many short ufunc calls.

Variable-length batches follow torch's PackedSequence: the batch is sorted by
length, longest first, and ``batch_sizes[t]`` says how many sequences are
still running at step t. Step t then touches rows ``[:batch_sizes[t]]`` only;
the other rows keep their state, so every sequence's final state stays where
it was at its own last step, with no masks at all.

Shapes: T steps, N batch, I input size, H hidden size, Hout = P or H.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _swap_go(w, H):
    """Swap the g and o blocks of a (4H, ...) array: (i, f, g, o) <-> (i, f, o, g)."""
    return np.concatenate([w[:2 * H], w[3 * H:], w[2 * H:3 * H]])


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


def _prev(states, t_prev, r0, m, n_prev, initial):
    """State rows [r0:m] entering a step: those of the previous step, and the
    initial state for rows that start only now (reverse direction with
    lengths, where shorter sequences start later)."""
    if t_prev is None or r0 >= n_prev:
        return initial[r0:m]
    if m <= n_prev:
        return states[t_prev, r0:m]
    return np.concatenate([states[t_prev, r0:n_prev], initial[n_prev:m]])


def _step_order(T, reverse, batch_sizes, N):
    """(t, n, t_prev, n_prev) for each step in the order forward visits them."""
    times = range(T - 1, -1, -1) if reverse else range(T)
    sizes = [N] * T if batch_sizes is None else [int(b) for b in batch_sizes]
    order, t_prev, n_prev = [], None, 0
    for t in times:
        order.append((t, sizes[t], t_prev, n_prev))
        t_prev, n_prev = t, sizes[t]
    return order


def lstm_layer_forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None,
                       bias_hh=None, weight_hr=None, reverse=False,
                       batch_sizes=None, workspace=None, out=None):
    """Run one LSTM layer over a sequence in one direction.

    Inputs:
    - x: (T, N, I), C-contiguous; with batch_sizes, sorted longest first
    - h0: (N, Hout); c0: (N, H)
    - weight_ih: (4H, I); weight_hh: (4H, Hout); bias_ih, bias_hh: (4H,) or
      None; weight_hr: (P, H) or None, all in torch's layout and gate order
    - reverse: run from the last step to the first
    - batch_sizes: None, or (T,) non-increasing counts of running sequences
    - workspace: None, or a dict whose arrays are reused for the caches
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
    # Tricks 1 and 2: reorder to (i, f, o, g) and halve the sigmoid rows.
    half = np.ones((4 * H, 1), dtype)
    half[:3 * H] = 0.5
    w_ih = _swap_go(weight_ih, H)
    w_hh = _swap_go(weight_hh, H)
    w_hh_half_t = (w_hh * half).T                                # (Hout, 4H)

    # Trick 3: z_t = x_t W_ih^T + b for every t in one GEMM.
    gates = _buffer(workspace, "gates", (T, N, 4 * H), dtype)
    np.matmul(x.reshape(T * N, I), (w_ih * half).T, out=gates.reshape(T * N, 4 * H))
    if bias_ih is not None:
        gates += _swap_go(bias_ih + bias_hh, H) * half[:, 0]

    packed = batch_sizes is not None
    cells = _buffer(workspace, "cells", (T, N, H), dtype)
    tanh_cells = _buffer(workspace, "tanh_cells", (T, N, H), dtype)
    if out is None:
        output = np.zeros((T, N, Hout), dtype) if packed else np.empty((T, N, Hout), dtype)
    else:
        output = out
        if packed:
            output.fill(0)
    h_cells = _buffer(workspace, "h_cells", (T, N, H), dtype, zero=packed) if weight_hr is not None else output
    recurrent = _buffer(workspace, "recurrent", (N, 4 * H), dtype)
    i_times_g = _buffer(workspace, "i_times_g", (N, H), dtype)
    order = _step_order(T, reverse, batch_sizes, N)

    def run_rows(r0, r1):
        """The time loop for batch rows [r0:r1] (trick 7)."""
        for t, n, t_prev, n_prev in order:
            m = min(n, r1)                                       # rows [r0:m] run at step t
            if m <= r0:
                continue
            h_prev = _prev(output, t_prev, r0, m, n_prev, h0)
            c_prev = _prev(cells, t_prev, r0, m, n_prev, c0)
            z = gates[t, r0:m]                                   # (m - r0, 4H)
            z += np.matmul(h_prev, w_hh_half_t, out=recurrent[r0:m])
            np.tanh(z, out=z)                                    # g, and tanh(z/2) for i, f, o
            sig = z[:, :3 * H]
            sig *= 0.5
            sig += 0.5                                           # i, f, o = sigmoid(z)
            i, f, o, g = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            c = np.multiply(f, c_prev, out=cells[t, r0:m])
            c += np.multiply(i, g, out=i_times_g[r0:m])          # c = f * c_prev + i * g
            tanh_c = np.tanh(c, out=tanh_cells[t, r0:m])
            np.multiply(o, tanh_c, out=h_cells[t, r0:m])         # h = o * tanh(c)
            if weight_hr is not None:
                np.matmul(h_cells[t, r0:m], weight_hr.T, out=output[t, r0:m])  # h = (o * tanh(c)) W_hr^T

    _parallel_rows(run_rows, N)

    if not packed or reverse:
        # Every sequence is running at the last step visited.
        last = order[-1][0]
        h_n, c_n = output[last].copy(), cells[last].copy()
    else:
        # Forward direction: sequence b last ran at step length_b - 1.
        lengths = _lengths_from_batch_sizes(batch_sizes, N)
        rows = np.arange(N)
        h_n, c_n = output[lengths - 1, rows], cells[lengths - 1, rows]

    cache = dict(x=x, h0=h0, c0=c0, gates=gates, cells=cells, tanh_cells=tanh_cells,
                 output=output, h_cells=h_cells, w_ih=w_ih, w_hh=w_hh,
                 weight_hr=weight_hr, has_bias=bias_ih is not None, order=order,
                 reverse=reverse, batch_sizes=batch_sizes)
    return output, h_n, c_n, cache


def _lengths_from_batch_sizes(batch_sizes, N):
    """(N,) length of each (sorted) sequence: how many steps had it running."""
    return np.count_nonzero(np.arange(N)[:, None] < np.asarray(batch_sizes)[None, :], axis=1)


def lstm_layer_backward(grad_output, grad_h_n, grad_c_n, cache, workspace=None):
    """Backpropagation through time for one layer and direction.

    Inputs:
    - grad_output: (T, N, Hout), gradient with respect to ``output``; values
      at steps past a sequence's length are ignored
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
    x, gates, cells, tanh_cells = cache["x"], cache["gates"], cache["cells"], cache["tanh_cells"]
    output, h_cells, weight_hr = cache["output"], cache["h_cells"], cache["weight_hr"]
    T, N, I = x.shape
    H = cells.shape[2]
    Hout = output.shape[2]
    dtype = x.dtype
    packed = cache["batch_sizes"] is not None

    # grad_z holds dLoss/dz for every step; rows of steps that a sequence does
    # not reach stay zero, so the GEMMs after the loop can sum over all of them.
    grad_z = _buffer(workspace, "grad_z", (T, N, 4 * H), dtype, zero=packed)
    grad_h = np.zeros((N, Hout), dtype) if grad_h_n is None else np.array(grad_h_n, dtype)
    grad_c = np.zeros((N, H), dtype) if grad_c_n is None else np.array(grad_c_n, dtype)
    if weight_hr is not None:
        # dLoss/dh at every step, kept for dW_hr = sum_t dh_t^T (o * tanh(c))_t.
        grad_h_all = _buffer(workspace, "grad_h_all", (T, N, Hout), dtype, zero=packed)
        grad_h_cell = _buffer(workspace, "grad_h_cell", (N, H), dtype)
    tmp_h = _buffer(workspace, "tmp_h", (N, H), dtype)
    tmp_3h = _buffer(workspace, "tmp_3h", (N, 3 * H), dtype)

    # Trick 6: steps whose grad_output is all zero skip adding it.
    grad_output_steps = np.flatnonzero(grad_output.reshape(T, -1).any(axis=1))
    live = np.zeros(T, bool)
    live[grad_output_steps] = True
    c0, w_hh = cache["c0"], cache["w_hh"]

    def run_rows(r0, r1):
        """BPTT for batch rows [r0:r1] (trick 7)."""
        for t, n, t_prev, n_prev in reversed(cache["order"]):
            m = min(n, r1)                                       # rows [r0:m] ran at step t
            if m <= r0:
                continue
            z = gates[t, r0:m]
            i, f, o, g = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            dz = grad_z[t, r0:m]
            d_i, d_f, d_o, d_g = dz[:, :H], dz[:, H:2 * H], dz[:, 2 * H:3 * H], dz[:, 3 * H:]
            tanh_c = tanh_cells[t, r0:m]
            c_prev = _prev(cells, t_prev, r0, m, n_prev, c0)
            tmp = tmp_h[r0:m]
            dh = grad_h[r0:m]
            if live[t]:
                dh += grad_output[t, r0:m]                       # from the output and from step t+1
            if weight_hr is not None:
                grad_h_all[t, r0:m] = dh
                dh = np.matmul(dh, weight_hr, out=grad_h_cell[r0:m])  # dh_cell = dh W_hr
            dc = grad_c[r0:m]
            np.multiply(dh, tanh_c, out=d_o)                     # do = dh * tanh(c)
            np.multiply(tanh_c, tanh_c, out=tmp)
            np.subtract(1, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp                                            # dc += dh * o * (1 - tanh(c)^2)
            np.multiply(dc, g, out=d_i)                          # di = dc * g
            np.multiply(dc, c_prev, out=d_f)                     # df = dc * c_prev
            np.multiply(dc, i, out=d_g)                          # dg = dc * i
            dc *= f                                              # dc_prev = dc * f
            sig = z[:, :3 * H]
            tmp3 = np.subtract(1, sig, out=tmp_3h[r0:m])
            tmp3 *= sig
            dz[:, :3 * H] *= tmp3                                # d(i, f, o) *= s (1 - s)
            np.multiply(g, g, out=tmp)
            np.subtract(1, tmp, out=tmp)
            d_g *= tmp                                           # dg *= 1 - g^2
            np.matmul(dz, w_hh, out=grad_h[r0:m])                # dh_prev = dz W_hh

    _parallel_rows(run_rows, N)

    # Trick 4: the weight gradients of all steps, one GEMM each.
    grad_z_2d = grad_z.reshape(T * N, 4 * H)
    grad_x = np.matmul(grad_z_2d, cache["w_ih"]).reshape(T, N, I)
    grad_w_ih = grad_z_2d.T @ x.reshape(T * N, I)
    # dW_hh = sum_t dz_t^T h_prev_t, where h_prev_t is the output of the step
    # before (in the direction of travel) or h0 where a sequence starts.
    h0 = cache["h0"]
    if cache["reverse"]:
        grad_w_hh = _gemm_tn(grad_z[:-1], output[1:])
        lengths = _lengths_from_batch_sizes(cache["batch_sizes"], N) if packed else np.full(N, T)
        grad_w_hh += grad_z[lengths - 1, np.arange(N)].T @ h0
    else:
        grad_w_hh = _gemm_tn(grad_z[1:], output[:-1]) + grad_z[0].T @ h0

    grads = {"weight_ih": _swap_go(grad_w_ih, H), "weight_hh": _swap_go(grad_w_hh, H)}
    if cache["has_bias"]:
        grads["bias_ih"] = _swap_go(grad_z_2d.sum(axis=0), H)
        grads["bias_hh"] = grads["bias_ih"].copy()
    if weight_hr is not None:
        grads["weight_hr"] = _gemm_tn(grad_h_all, h_cells)
    return grad_x, grad_h, grad_c, grads


def _gemm_tn(a, b):
    """sum over the leading axes of a^T b: (..., M), (..., K) -> (M, K)."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


# Trick 7: batch rows in parallel threads, each with single-threaded BLAS.
PARALLEL_ROWS = False             # opt in; measured slower on 2 cores (see the top)
MIN_ROWS_PER_THREAD = 32          # smaller blocks are not worth a thread
_pool = None
_pool_lock = threading.Lock()
_blas = None                      # threadpoolctl controllers of numpy's BLAS, or []


def _blas_controllers():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = [lib for lib in ThreadpoolController().lib_controllers
                     if lib.user_api == "blas"]
        except Exception:          # threadpoolctl missing or unusable: no threads
            _blas = []
    return _blas


def _parallel_rows(run_rows, N):
    """Call run_rows(r0, r1) on blocks of rows that together cover [0, N),
    one block per thread that numpy's BLAS may use, with BLAS limited to one
    thread while they run; or run_rows(0, N) alone."""
    global _pool
    blas = _blas_controllers() if PARALLEL_ROWS and N >= 2 * MIN_ROWS_PER_THREAD else []
    threads = min([lib.num_threads for lib in blas] or [1])
    workers = min(threads, N // MIN_ROWS_PER_THREAD, os.cpu_count() or 1)
    if workers < 2:
        run_rows(0, N)
        return
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers - 1:
            _pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="npylstm")
        bounds = [N * k // workers for k in range(workers + 1)]
        saved = [lib.num_threads for lib in blas]
        for lib in blas:
            lib.set_num_threads(1)
        try:
            futures = [_pool.submit(run_rows, bounds[k], bounds[k + 1]) for k in range(1, workers)]
            try:
                run_rows(bounds[0], bounds[1])
            finally:
                for future in futures:
                    future.result()
        finally:
            for lib, n in zip(blas, saved):
                lib.set_num_threads(n)
