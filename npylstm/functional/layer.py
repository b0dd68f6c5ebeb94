"""One LSTM layer in one direction over a whole sequence: forward and BPTT.

The equations are those of ``cell.py`` (docs/lstm.md, eq. 1-16; BPTT over the
sequence eq. 17-19, projection eq. 20-21), applied at every time step: one
step forward in ``_step_forward``, its backward in ``_step_backward``. This
file is where the performance tricks live, and this list is their one
description (docs/architecture.md links here). Each computes the same
equations as the plain cell and changes results at most by floating-point
round-off (sums added in another order), which is why the layer agrees with
torch to about 1e-15 in float64:

1. One GEMM per step for the whole pre-activation. Eq. 1,
   z = x W_ih^T + b_ih + h_prev W_hh^T + b_hh, is one product of the stacked
   matrix W = [W_hh | W_ih | b_ih + b_hh] (4H, K) with the stacked inputs
   [h_prev, x, 1] (K = Hout + I + 1). All four gates, the input, the
   recurrence and both biases come out of one BLAS call, with no separate
   additions. (For thin inputs this beats projecting the inputs of all T
   steps before the loop: OpenBLAS is slow for the thin K = I product, 8 ms
   at the seed's shape, and the hoisted result costs a pass over memory to
   add back at every step. For wide inputs see trick 8.)
2. Feature-major layout: one column per sequence. Inside this file a step
   computes the transpose of eq. 1, z^T = W [h_prev, x, 1]^T, (4H, N): the
   column-vector form of the textbooks. Then each gate is one contiguous
   (H, N) block of memory, and the elementwise work of a step runs over
   contiguous blocks instead of four interleaved column ranges of an
   (N, 4H) array, about 3x faster at the seed's shape. Arrays come in and
   go out in torch's (T, N, .) layout; the transposes cost one copy each
   and move numbers without changing them.
3. Gate order (i, f, o, g) inside this file. torch stores the four gate
   blocks as (i, f, g, o); swapping the last two blocks makes the three
   sigmoid gates one contiguous (3H, N) block, so each step makes one call
   for them instead of three. Weights are reordered on the way in and
   gradients on the way out, so callers only ever see torch's order (a
   permutation: no arithmetic changes).
4. Sigmoid through tanh, with the 1/2 folded into the weights:
   sigmoid(z) = 0.5 * tanh(z / 2) + 0.5. The rows of W that feed sigmoid
   gates are multiplied by 0.5 once per call (exact in binary floating
   point: it only changes the exponent, and halving every term of a sum
   halves every rounded partial sum), so the GEMM gives exactly z/2 and one
   tanh over all 4H pre-activations gives tanh(z_g) and tanh(z/2) for the
   other gates at once.
5. One GEMM for every weight gradient, after the loop: since z_t = W a_t with
   a_t = [h_prev, x_t, 1]^T, dW = sum_t dz_t a_t^T, which is
   [dW_hh | dW_ih | db] at once. dz and the inputs are kept with time and
   batch side by side, (4H, T, N) and (K, T, N), so the sum over t is the inner dimension
   of one (4H, T*N) x (T*N, K) product: the same sum of products, grouped
   differently. The input gradient of all steps, dx_t = W_ih^T dz_t, is one
   more GEMM.
6. In-place ufuncs (``out=``) into preallocated feature-major caches
   ((K, T, N) inputs, (T, 4H, N) gates, (T, H, N) cells, ...), which come
   from a ``workspace`` dict reused across calls, so a training loop does
   not page-fault fresh memory on every step. This changes where results
   are stored, never their values.
7. Backward reads the activations saved by forward (i, f, o, g, c, tanh(c)
   and the inputs of every step) and recomputes nothing: sigmoid' = s (1 - s)
   and tanh' = 1 - tanh^2 are taken from them.
8. (Off by default; see HOIST_MIN_INPUT.) For wide inputs
   (I >= HOIST_MIN_INPUT), the cached forward projects the
   inputs of all T steps in one GEMM before the loop, as cuDNN does:
   [W_ih | b] [x_t, 1]^T for every t is one (4H, I+1) x (I+1, T*N)
   product into a (4H, T, N) workspace, and each step multiplies only
   W_hh h_prev (K = Hout instead of Hout + I + 1) and adds its slice. The
   sum is then taken in another order, so the result changes at round-off
   only (and is no longer bit for bit that of trick 1 for those shapes).
   The forward without a cache keeps trick 1 (a (4H, T, N) buffer would
   undo its O(N H) memory). benchmarks/hoist.py measures it on and off.
9. (The variants only.) A variant's backward step is linear in the incoming
   dh and dc, with factors that forward has fixed: dz_o = dh q_o,
   dz_i,f,g = dc q_i,f,g, dc += dh b, dc_prev = dc phi.
   ``_variant_local_derivatives`` computes q, b and phi for a block of steps
   in a few array operations, peepholes, CIFG, clip and ablations folded in
   (blocks of LOCAL_BLOCK numbers, so that they stay in the CPU's cache);
   each step then makes four products and an addition, and the peephole
   gradients are three sums after the loop. It runs only where a block holds
   several steps (small N H); otherwise ``_variant_step_backward_direct``
   computes eq. 40-45 step by step, as written. The products are grouped
   differently, so results change at round-off only. (The plain path keeps
   its step as it is: it is the one tests/test_variants_default.py holds to
   c6dfe56 bit for bit.)

The variants (peephole, input_forget, clip, ablate; docs/lstm.md, section 11)
run in their own step functions, ``_variant_step_forward`` and
``_variant_step_backward_direct`` (called by ``_step_forward`` and
``_step_backward``), or ``_variant_step_backward`` where trick 9 runs, with the
same tricks; with every option at its default the step takes the plain path
and pays one branch.

Variable-length batches follow torch's PackedSequence: the batch is sorted by
length, longest first, and ``batch_sizes[t]`` says how many sequences are
still running at step t. Step t then touches sequences ``[:batch_sizes[t]]`` only;
the others keep their state, so every sequence's final state stays where
it was at its own last step, with no masks at all.

Shapes: T steps, N batch, I input size, H hidden size, Hout = P or H,
K = Hout + I (+ 1 with a bias). Comments on lines give the feature-major
shapes used inside this file, such as (4H, n).
"""
from dataclasses import dataclass

import numpy as np

from .variant import check_variant

# Trick 8 runs for input sizes I >= HOIST_MIN_INPUT. Off (inf): measured under
# load and again with nothing else running, it was not faster at both 1 and 2
# threads for any wide shape (on / off 0.98-1.02; docs/benchmarks.md);
# benchmarks/hoist.py measures it, and 256 would turn it on for layer 1 of a
# bidirectional H = 128 stack.
HOIST_MIN_INPUT = float("inf")

# Trick 9 computes a variant's backward factors for blocks of steps whose
# (steps, 4H, N) gate stack holds at most LOCAL_BLOCK numbers, so that a
# block's arrays stay in the CPU's cache, and runs when a block holds at least
# LOCAL_BLOCK_MIN_STEPS steps (or the whole sequence). Paired in one process
# (benchmarks/trick9.py), it was 9-13% faster than the direct step at the
# study's shape (T=40, N=64, H=32: blocks of 8 steps) and 4-8% slower at the
# seed's (N=450, H=100: blocks of 1 step).
LOCAL_BLOCK = 2 ** 16
LOCAL_BLOCK_MIN_STEPS = 4


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


def _previous_cells(cells, c0_t, order, packed, workspace):
    """(T, H, N): the cell each step started from, c_prev of step t at [t]
    (the columns of sequences not running at a step are zero with lengths).
    cells: (T, H, N); c0_t: (H, N); order: from _step_order."""
    T = cells.shape[0]
    c_prevs = _buffer(workspace, "c_prevs", cells.shape, cells.dtype, zero=packed)
    if packed:
        for t, n, t_prev, n_prev in order:
            c_prevs[t, :, :n] = _prev(cells, t_prev, n, n_prev, c0_t)
    elif order[0][0] == 0:                                       # forward: from step t - 1
        c_prevs[0] = c0_t
        c_prevs[1:] = cells[:T - 1]
    else:                                                        # reverse: from step t + 1
        c_prevs[T - 1] = c0_t
        c_prevs[:T - 1] = cells[1:]
    return c_prevs


def _lengths_from_batch_sizes(batch_sizes, N):
    """(N,) length of each (sorted) sequence: how many steps had it running."""
    return np.count_nonzero(np.arange(N)[:, None] < np.asarray(batch_sizes)[None, :], axis=1)


@dataclass
class _Variant:
    """The variant options of one call, prepared for the feature-major layout.

    - w_ci, w_cf, w_co: the peephole vectors as (H, 1) columns, or None
    - w_if_half = [w_ci, w_cf] / 2, (2, H, 1), and w_co_half = w_co / 2: the
      forward adds them to the sigmoid rows, which hold z / 2 (trick 4)
    - clip: the bound, or None; the sigmoid rows are clipped at clip / 2
      (exact: halving is exact in binary floating point)
    """
    peephole: bool
    input_forget: bool
    clip: float
    ablate: tuple
    w_ci: np.ndarray = None
    w_cf: np.ndarray = None
    w_co: np.ndarray = None
    w_if_half: np.ndarray = None
    w_co_half: np.ndarray = None


def _variant(peephole, input_forget, clip, ablate, dtype):
    """A _Variant for these options, or None when every option is at its default."""
    input_forget, clip, ablate = check_variant(input_forget, clip, ablate)
    if peephole is None and not input_forget and clip is None and not ablate:
        return None
    v = _Variant(peephole is not None, input_forget, clip, ablate)
    if peephole is not None:
        v.w_ci, v.w_cf, v.w_co = (np.asarray(w, dtype)[:, None] for w in peephole)
        v.w_if_half = 0.5 * np.stack([v.w_ci, v.w_cf])           # (2, H, 1)
        v.w_co_half = 0.5 * v.w_co
    return v


def _sigmoid_of_half(z):
    """In place: z holds z/2 (trick 4); afterwards sigmoid(z) = 0.5 * tanh(z/2) + 0.5."""
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5


def _clip(z, bound, keep, scratch):
    """In place: clip z to [-bound, bound]; keep (bool) records where z was
    inside. scratch: an array shaped like z."""
    np.less_equal(np.abs(z, out=scratch), bound, out=keep)
    np.clip(z, -bound, bound, out=z)


def _variant_step_forward(z, c_prev, c, act_c, v, keep, tmp):
    """One forward step of a variant LSTM (docs/lstm.md, eq. 34-39).

    Feature-major, in this file's gate order (i, f, o, g). z (4H, n) comes
    from the GEMM, with z/2 in the sigmoid rows (trick 4), and leaves holding
    the gates i, f, o, g. Writes c (H, n) and act_c (H, n): tanh(c), or c
    itself when the output activation is ablated. keep: (4H, n) bool, where
    clip let z through (None without clip). tmp: (2H, n) scratch.
    """
    H = c.shape[0]
    z_if, z_o, z_g = z[:2 * H], z[2 * H:3 * H], z[3 * H:]
    if v.peephole:
        # z_i += w_ci * c_prev and z_f += w_cf * c_prev: the peepholes of the
        # input and forget gates look at the previous cell (eq. 34).
        z_if_3d = z_if.reshape(2, H, -1)                         # a view: (i, f) x (H, n)
        z_if_3d += np.multiply(v.w_if_half, c_prev, out=tmp.reshape(2, H, -1))
    if v.clip is not None:
        _clip(z_if, 0.5 * v.clip, keep[:2 * H], tmp)             # eq. 36, after the peepholes
        _clip(z_g, v.clip, keep[3 * H:], tmp[:H])
    _sigmoid_of_half(z_if)
    i, f, g = z[:H], z[H:2 * H], z_g
    if v.input_forget:
        np.subtract(1, i, out=f)                                 # CIFG: f = 1 - i (eq. 37)
    if "input_gate" in v.ablate:
        i.fill(1)
    if "forget_gate" in v.ablate:
        f.fill(1)
    if "input_activation" not in v.ablate:
        np.tanh(z_g, out=z_g)                                    # else g = z_g
    np.multiply(f, c_prev, out=c)
    c += np.multiply(i, g, out=tmp[:H])                          # c = f * c_prev + i * g
    if "output_activation" in v.ablate:
        act_c[...] = c                                           # h = o * c
    else:
        np.tanh(c, out=act_c)
    if v.peephole:
        z_o += np.multiply(v.w_co_half, c, out=tmp[:H])          # z_o += w_co * c, the new cell (eq. 35)
    if v.clip is not None:
        _clip(z_o, 0.5 * v.clip, keep[2 * H:3 * H], tmp[:H])
    _sigmoid_of_half(z_o)
    if "output_gate" in v.ablate:
        z_o.fill(1)


def _variant_local_derivatives(z, c_prev, act_c, v, keep, q, b, phi, scratch):
    """Trick 9: every factor of a variant's BPTT step that does not depend on
    the incoming gradients, for a block of steps at once (docs/lstm.md, eq. 40-45).

    Eq. 40-45 make dz and dc_prev of a step linear in the incoming dh and dc,
    with factors that forward has already fixed:

        dc     = dc_next + dh * b,     b   = o a'(c) + w_co q_o
        dz_o   = dh * q_o,             q_o = a(c) o (1 - o) kappa_o
        dz_i   = dc * q_i,             q_i = (g, or g - c_prev with CIFG) i (1 - i) kappa_i
        dz_f   = dc * q_f,             q_f = c_prev f (1 - f) kappa_f  (0 with CIFG)
        dz_g   = dc * q_g,             q_g = i g' kappa_g
        dc_prev = dc * phi,            phi = f + w_ci q_i + w_cf q_f

    (a = tanh or the identity with NOAF, g' = 1 - g^2 or 1 with NIAF, kappa =
    1 where clip let z through; an ablated gate s = 1 has s (1 - s) = 0.) So the
    loop over steps computes only four products and an addition; the factors
    are a few array operations over a block of S steps. The products are the
    same, grouped differently: results change at round-off only.

    Inputs (feature-major, gate order (i, f, o, g)): z (S, 4H, N), the gates
    that forward kept; c_prev, act_c (S, H, N); v: the _Variant; keep:
    (S, 4H, N) bool or None.

    Writes q (S, 4H, N), b (S, H, N) and phi (S, H, N); scratch: (S, H, N).
    """
    H = z.shape[1] // 4
    i, f, o, g = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
    q_i, q_f, q_o, q_g = q[:, :H], q[:, H:2 * H], q[:, 2 * H:3 * H], q[:, 3 * H:]
    np.subtract(1, z[:, :3 * H], out=q[:, :3 * H])
    q[:, :3 * H] *= z[:, :3 * H]                                 # s (1 - s) for i, f, o
    if v.input_forget:
        q_i *= np.subtract(g, c_prev, out=b)                     # f = 1 - i (eq. 42)
        q_f.fill(0)
    else:
        q_i *= g
        q_f *= c_prev
    q_o *= act_c
    if "input_activation" in v.ablate:
        q_g[...] = i                                             # g' = 1
    else:
        np.multiply(g, g, out=q_g)
        np.subtract(1, q_g, out=q_g)
        q_g *= i                                                 # i (1 - g^2)
    if v.clip is not None:
        q *= keep                                                # eq. 43
    if "output_activation" in v.ablate:
        b[...] = o                                               # a'(c) = 1
    else:
        np.multiply(act_c, act_c, out=b)
        np.subtract(1, b, out=b)
        b *= o                                                   # o (1 - tanh(c)^2)
    phi[...] = f
    if v.peephole:
        b += np.multiply(v.w_co, q_o, out=scratch)               # dz_o reaches c through w_co
        phi += np.multiply(v.w_ci, q_i, out=scratch)
        phi += np.multiply(v.w_cf, q_f, out=scratch)             # eq. 44


def _variant_step_backward(dh, dc, dz, q, b, phi, tmp):
    """One backward step of a variant LSTM (docs/lstm.md, eq. 40-45), in place,
    with its factors from ``_variant_local_derivatives`` (trick 9).

    Feature-major, gate order (i, f, o, g). dh (H, n): dLoss/dh of this step;
    dc (H, n) comes in as the gradient from step t+1 and leaves as the one for
    c_prev; dz (4H, n) receives dLoss/dz; q (4H, n), b, phi (H, n): this
    step's factors; tmp: (H, n) scratch.
    """
    H = dc.shape[0]
    dc += np.multiply(dh, b, out=tmp)                            # eq. 40-41
    np.multiply(q.reshape(4, H, -1), dc, out=dz.reshape(4, H, -1))   # dz_i, dz_f, dz_g = dc q
    np.multiply(dh, q[2 * H:3 * H], out=dz[2 * H:3 * H])         # dz_o = dh q_o
    dc *= phi                                                    # eq. 44


def _variant_step_backward_direct(dh, dc, z, c_prev, c, act_c, dz, v, keep, tmp, grad_peephole):
    """One backward step of a variant LSTM (docs/lstm.md, eq. 40-45), as the
    equations are written: for the shapes where trick 9 does not pay.

    Feature-major, gate order (i, f, o, g). dh: (H, n), dLoss/d(o * act(c));
    dc: (H, n), comes in as the gradient from step t+1 and leaves as the one
    for c_prev; z: the gates i, f, o, g that forward kept; dz: (4H, n), gets
    dLoss/dz. An ablated gate is the constant 1, so its s (1 - s) is 0 and
    its dz is 0 with no special case. grad_peephole: (3, H), the sums for
    w_ci, w_cf, w_co, added to. tmp: (2H, n) scratch.
    """
    H = c.shape[0]
    i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
    d_if, d_i, d_f, d_o, d_g = dz[:2 * H], dz[:H], dz[H:2 * H], dz[2 * H:3 * H], dz[3 * H:]
    t1, t2 = tmp[:H], tmp[H:]
    np.multiply(dh, act_c, out=d_o)                              # do = dh * act(c)
    np.subtract(1, o, out=t1)
    t1 *= o
    d_o *= t1                                                    # dz_o = do * o (1 - o)
    if v.clip is not None:
        d_o *= keep[2 * H:3 * H]
    if "output_activation" in v.ablate:
        np.multiply(dh, o, out=t1)                               # act'(c) = 1
    else:
        np.multiply(act_c, act_c, out=t1)
        np.subtract(1, t1, out=t1)
        t1 *= o
        t1 *= dh
    dc += t1                                                     # dc += dh * o * act'(c)
    if v.peephole:
        dc += np.multiply(v.w_co, d_o, out=t1)                   # z_o saw c through w_co
        grad_peephole[2] += np.multiply(d_o, c, out=t1).sum(axis=1)
    np.multiply(dc, g, out=d_i)                                  # di = dc * g
    np.multiply(dc, c_prev, out=d_f)                             # df = dc * c_prev
    np.multiply(dc, i, out=d_g)                                  # dg = dc * i
    if v.input_forget:
        d_i -= d_f                                               # f = 1 - i
    dc *= f                                                      # dc_prev = dc * f (+ peepholes below)
    np.subtract(1, z[:2 * H], out=tmp)
    tmp *= z[:2 * H]
    d_if *= tmp                                                  # d(i, f) *= s (1 - s)
    if v.input_forget:
        d_f.fill(0)
    if "input_activation" not in v.ablate:
        np.multiply(g, g, out=t1)
        np.subtract(1, t1, out=t1)
        d_g *= t1                                                # dg *= 1 - g^2
    if v.clip is not None:
        d_if *= keep[:2 * H]
        d_g *= keep[3 * H:]
    if v.peephole:
        peep = np.multiply(v.w_ci, d_i, out=t1)
        dc += peep
        dc += np.multiply(v.w_cf, d_f, out=t2)                   # dc_prev += dz_i w_ci + dz_f w_cf
        prod = np.multiply(d_if.reshape(2, H, -1), c_prev, out=tmp.reshape(2, H, -1))
        grad_peephole[:2] += prod.sum(axis=2)                    # dw_ci, dw_cf += sum_n dz * c_prev


def _step_forward(z, c_prev, c, act_c, h_cell, tmp, variant=None, keep=None):
    """One forward step after its GEMM (eq. 2-7; a variant's eq. 34-39), in place.

    Shared by the cached forward and the one without a cache. Feature-major,
    gate order (i, f, o, g). z (4H, n) comes in holding the pre-activations,
    with z/2 in the sigmoid rows (trick 4), and leaves holding the gates
    i, f, o, g. Writes c (H, n), act_c (H, n) = tanh(c) (or c itself when the
    output activation is ablated) and h_cell (H, n) = o * act_c. c may be
    c_prev itself: each element of c_prev is read before c overwrites it.
    tmp: (2H, n) scratch; keep: (4H, n) bool with clip, else None.
    """
    H = c.shape[0]
    if variant is None:
        np.tanh(z, out=z)                                        # g, and tanh(z/2) for i, f, o
        sig = z[:3 * H]
        sig *= 0.5
        sig += 0.5                                               # i, f, o = sigmoid(z)
        i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        np.multiply(f, c_prev, out=c)
        c += np.multiply(i, g, out=tmp[:H])                      # c = f * c_prev + i * g
        np.tanh(c, out=act_c)
        np.multiply(o, act_c, out=h_cell)                        # h = o * tanh(c)
    else:                                                        # the variants, eq. 34-39
        _variant_step_forward(z, c_prev, c, act_c, variant, keep, tmp)
        np.multiply(z[2 * H:3 * H], act_c, out=h_cell)           # h = o * act(c)


def _step_backward(dh, dc, z, c_prev, c, act_c, dz, tmp, variant=None, keep=None,
                   grad_peephole=None):
    """One backward step before its GEMM (eq. 8-16; a variant's eq. 40-45), in place:
    the mirror of ``_step_forward``.

    Feature-major, gate order (i, f, o, g). dh (H, n): dLoss/d(o * act(c)) of
    this step (from the output and from step t+1); dc (H, n) comes in as the
    gradient from step t+1 and leaves as the one for c_prev; z (4H, n): the
    gates i, f, o, g that forward kept; c_prev (H, n): the cell this step
    started from; c, act_c (H, n): this step's cell and act(c); dz (4H, n)
    receives dLoss/dz, which the GEMM after the step turns into dh_prev.
    tmp: (3H, n) scratch; keep: (4H, n) bool with clip, else None;
    grad_peephole: (3, H), the sums for w_ci, w_cf, w_co, added to. (Where
    it pays, the layer runs a variant's step as ``_variant_step_backward``
    instead, trick 9.)
    """
    H = dc.shape[0]
    if variant is None:
        i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        d_i, d_f, d_o, d_g = dz[:H], dz[H:2 * H], dz[2 * H:3 * H], dz[3 * H:]
        t1 = tmp[:H]
        np.multiply(dh, act_c, out=d_o)                          # do = dh * tanh(c)
        np.multiply(act_c, act_c, out=t1)
        np.subtract(1, t1, out=t1)
        t1 *= o
        t1 *= dh
        dc += t1                                                 # dc += dh * o * (1 - tanh(c)^2)
        np.multiply(dc, g, out=d_i)                              # di = dc * g
        np.multiply(dc, c_prev, out=d_f)                         # df = dc * c_prev
        np.multiply(dc, i, out=d_g)                              # dg = dc * i
        dc *= f                                                  # dc_prev = dc * f
        sig = z[:3 * H]
        np.subtract(1, sig, out=tmp)
        tmp *= sig
        dz[:3 * H] *= tmp                                        # d(i, f, o) *= s (1 - s)
        np.multiply(g, g, out=t1)
        np.subtract(1, t1, out=t1)
        d_g *= t1                                                # dg *= 1 - g^2
    else:                                                        # the variants, eq. 40-45
        _variant_step_backward_direct(dh, dc, z, c_prev, c, act_c, dz, variant, keep,
                                      tmp[:2 * H], grad_peephole)


def lstm_layer_forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None,
                       bias_hh=None, weight_hr=None, reverse=False,
                       batch_sizes=None, workspace=None, out=None, *, peephole=None,
                       input_forget=False, clip=None, ablate=(), keep_cache=True):
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
    - peephole: None or (w_ci, w_cf, w_co), each (H,); input_forget, clip,
      ablate: the variant options of ``lstm_cell_forward`` (docs/lstm.md,
      section 11)
    - keep_cache: False for inference (``npylstm.no_grad()``): the same
      steps, but with one step's buffers, O(N H), no cache and no (T, 4H, N)
      gate stack (``_forward_no_cache``); the returned cache is then None

    Returns:
    - output: (T, N, Hout), the hidden state at every step; zero at steps
      past a sequence's length
    - h_n: (N, Hout), c_n: (N, H), each sequence's state after its last step
      (after step 0 when reverse)
    - cache: for lstm_layer_backward (None without keep_cache)
    """
    T, N, I = x.shape
    H = weight_hh.shape[0] // 4
    Hout = weight_hh.shape[1]
    dtype = x.dtype
    packed = batch_sizes is not None
    variant = _variant(peephole, input_forget, clip, ablate, dtype)
    weights = _stacked_weights(weight_ih, weight_hh, bias_ih, bias_hh)   # (4H, K)
    K = weights.shape[1]
    half = np.ones((4 * H, 1), dtype)
    half[:3 * H] = 0.5                                           # trick 4
    weights_half = weights * half
    if not keep_cache:
        del weights                 # without a backward only W with its halved rows is needed
        return _forward_no_cache(x, h0, c0, weights_half, weight_hr, bias_ih is not None,
                                 reverse, batch_sizes, variant, workspace, out)

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
    # With lengths, the columns of sequences past their end are never written;
    # zeros there keep the variants' factors (trick 9) free of stale memory.
    gates = _buffer(workspace, "gates", (T, 4 * H, N), dtype, zero=packed)
    cells = _buffer(workspace, "cells", (T, H, N), dtype, zero=packed)
    tanh_cells = _buffer(workspace, "tanh_cells", (T, H, N), dtype, zero=packed)
    hidden = _buffer(workspace, "hidden", (T, Hout, N), dtype, zero=packed)       # h_t^T
    h_cells = hidden if weight_hr is None else _buffer(
        workspace, "h_cells", (H, T, N), dtype, zero=packed).transpose(1, 0, 2)   # (o * tanh(c))^T
    tmp_2h = _buffer(workspace, "tmp_2h", (2 * H, N), dtype)
    h0_t, c0_t = h0.T, c0.T                                      # (Hout, N), (H, N)
    keep = None
    if variant is not None and variant.clip is not None:
        keep = _buffer(workspace, "keep", (T, 4 * H, N), np.bool_, zero=packed)  # where clip let z through

    hoist = I >= HOIST_MIN_INPUT
    if hoist:
        # Trick 8: the input part of eq. 1 for all steps in one GEMM before the
        # loop, [W_ih | b] [x_t, 1]^T for every t; each step then multiplies
        # only W_hh h_prev and adds it.
        x_proj = _buffer(workspace, "x_proj", (4 * H, T * N), dtype)
        np.matmul(weights_half[:, Hout:], inputs[Hout:].reshape(K - Hout, T * N), out=x_proj)
        x_proj = x_proj.reshape(4 * H, T, N)
        weights_h_half = np.ascontiguousarray(weights_half[:, :Hout])     # (4H, Hout)

    order = _step_order(T, reverse, batch_sizes, N)
    for t, n, t_prev, n_prev in order:
        a = inputs[:, t, :n]                                     # (K, n)
        m = min(n, n_prev)
        if m:
            a[:Hout, :m] = hidden[t_prev, :, :m]                 # h_prev from the step before
        if m < n:
            a[:Hout, m:] = h0_t[:, m:n]                          # ... or h0 where a sequence starts
        if hoist:
            z = np.matmul(weights_h_half, a[:Hout], out=gates[t, :, :n])  # (4H, n)
            z += x_proj[:, t, :n]
        else:
            z = np.matmul(weights_half, a, out=gates[t, :, :n])  # (4H, n)
        c_prev = _prev(cells, t_prev, n, n_prev, c0_t)
        _step_forward(z, c_prev, cells[t, :, :n], tanh_cells[t, :, :n], h_cells[t, :, :n],
                      tmp_2h[:, :n], variant, None if keep is None else keep[t, :, :n])
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
                 packed=packed, variant=variant, keep=keep)
    return output, h_n, c_n, cache


def _forward_no_cache(x, h0, c0, weights_half, weight_hr, has_bias, reverse, batch_sizes,
                      variant, workspace, out):
    """lstm_layer_forward for inference: the same steps with one step's buffers.

    The state lives in two small buffers that every step overwrites: the
    stacked GEMM input a = [h_prev, x_t, 1]^T (K, N), whose h rows receive
    the new h once the step's GEMM has read them, and c (H, N). With lengths,
    a sequence that does not run at a step keeps its state in its columns,
    so what is left after the last step is h_n and c_n. Memory: O(N H) next
    to the output, instead of the caches' O(T N H); each step's buffers,
    (4H + K + 4H) N numbers, stay in the CPU's cache at moderate sizes.
    """
    T, N, I = x.shape
    H = c0.shape[1]
    Hout = h0.shape[1]
    K = weights_half.shape[1]
    dtype = x.dtype
    a = _buffer(workspace, "step_inputs", (K, N), dtype)         # [h_prev, x_t, 1]^T
    a[:Hout] = h0.T
    if has_bias:
        a[K - 1] = 1
    c = _buffer(workspace, "step_cell", (H, N), dtype)
    c[...] = c0.T
    z = _buffer(workspace, "step_gates", (4 * H, N), dtype)
    act_c = _buffer(workspace, "step_tanh_cell", (H, N), dtype)
    tmp = _buffer(workspace, "tmp_2h", (2 * H, N), dtype)
    h_cell = a[:Hout] if weight_hr is None else _buffer(workspace, "step_h_cell", (H, N), dtype)
    keep = None
    if variant is not None and variant.clip is not None:
        keep = _buffer(workspace, "step_keep", (4 * H, N), np.bool_)
    output = np.empty((T, N, Hout), dtype) if out is None else out
    views = {}                      # n -> the buffers' first n columns, sliced once per n

    for t, n, _, _ in _step_order(T, reverse, batch_sizes, N):
        if n not in views:
            views[n] = (a[:, :n], a[:Hout, :n], a[Hout:Hout + I, :n], z[:, :n], c[:, :n],
                        act_c[:, :n], h_cell[:, :n], tmp[:, :n],
                        None if keep is None else keep[:, :n])
        a_n, h_n, x_n, z_n, c_n, act_n, h_cell_n, tmp_n, keep_n = views[n]
        x_n[...] = x[t, :n].T
        np.matmul(weights_half, a_n, out=z_n)                    # (4H, n), overwrites nothing of a
        _step_forward(z_n, c_n, c_n, act_n, h_cell_n, tmp_n, variant, keep_n)
        if weight_hr is not None:
            np.matmul(weight_hr, h_cell_n, out=h_n)              # h = W_hr (o * tanh(c))
        output[t, :n] = h_n.T
        if n < N:
            output[t, n:] = 0                                    # past these sequences' lengths
    return output, a[:Hout].T.copy(), c.T.copy(), None


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
      "weight_hr" (P, H) with a projection, "weight_ci", "weight_cf",
      "weight_co" (H,) with peepholes
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
    tmp_3h = _buffer(workspace, "tmp_3h", (3 * H, N), dtype)
    # dz of one step is built in a small contiguous buffer that stays in
    # cache, then copied once into its strided slab of grad_z.
    grad_z_step = _buffer(workspace, "grad_z_step", (4 * H, N), dtype)
    variant, keep = cache["variant"], cache["keep"]
    # Trick 9's factors, for blocks of S steps at a time: small enough to stay
    # in the CPU's cache, large enough to make few calls.
    S = min(T, LOCAL_BLOCK // (4 * H * N))
    factored = variant is not None and S >= min(T, LOCAL_BLOCK_MIN_STEPS)
    grad_peephole = None
    if variant is not None and not factored:
        grad_peephole = np.zeros((3, H), dtype)                  # sums for w_ci, w_cf, w_co
    if factored:
        c_prevs = _previous_cells(cells, cache["c0_t"], cache["order"], packed, workspace)
        q = _buffer(workspace, "local_q", (S, 4 * H, N), dtype)
        b, phi, scratch = (_buffer(workspace, name, (S, H, N), dtype)
                           for name in ("local_b", "local_phi", "local_scratch"))
        block = None

    for t, n, t_prev, n_prev in reversed(cache["order"]):
        dz = grad_z_step[:, :n]                                  # (4H, n)
        dh = grad_h[:, :n]
        if grad_output is not None:
            dh += grad_out_t[t, :, :n]                           # from the output and from step t+1
        if weight_hr is not None:
            grad_h_all[:, t, :n] = dh
            dh = np.matmul(weight_hr.T, dh, out=grad_h_cell[:, :n])  # dh_cell = W_hr^T dh
        if factored:
            if t // S != block:                                  # the factors of t's block
                block = t // S
                lo, hi = block * S, min(block * S + S, T)
                _variant_local_derivatives(gates[lo:hi], c_prevs[lo:hi], tanh_cells[lo:hi],
                                           variant, None if keep is None else keep[lo:hi],
                                           q[:hi - lo], b[:hi - lo], phi[:hi - lo],
                                           scratch[:hi - lo])
            k = t - lo
            _variant_step_backward(dh, grad_c[:, :n], dz, q[k, :, :n], b[k, :, :n],
                                   phi[k, :, :n], tmp_3h[:H, :n])
        else:
            _step_backward(dh, grad_c[:, :n], gates[t, :, :n],
                           _prev(cells, t_prev, n, n_prev, cache["c0_t"]), cells[t, :, :n],
                           tanh_cells[t, :, :n], dz, tmp_3h[:, :n], variant,
                           None if keep is None else keep[t, :, :n], grad_peephole)
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
    if variant is not None and variant.peephole and not factored:
        grads["weight_ci"], grads["weight_cf"], grads["weight_co"] = grad_peephole
    elif variant is not None and variant.peephole:
        # Eq. 41 and 45: sums over steps and sequences of dz times the cell each
        # peephole read (zero columns past a sequence's end add nothing).
        grads["weight_ci"] = np.einsum("htn,thn->h", grad_z[:H], c_prevs)
        grads["weight_cf"] = np.einsum("htn,thn->h", grad_z[H:2 * H], c_prevs)
        grads["weight_co"] = np.einsum("htn,thn->h", grad_z[2 * H:3 * H], cells)
    if weight_hr is not None:
        h_cells = cache["h_cells"].transpose(1, 0, 2)            # (H, T, N)
        grads["weight_hr"] = grad_h_all.reshape(Hout, T * N) @ h_cells.reshape(H, T * N).T
    return np.ascontiguousarray(grad_x), grad_h.T.copy(), grad_c.T.copy(), grads
