"""One measurement in a fresh process: `python benchmarks/worker.py IMPL CASE_JSON`.

IMPL is "npylstm" or "torch"; CASE_JSON describes one case (see run.py). The
process imports only the implementation it measures (torch runs about 2x
slower right after numpy's BLAS ran in the same process, and the other way
round), limits it to the requested number of threads, and prints one JSON
line with the timings. Called by run.py; not meant to be run by hand.

Forward is timed under npylstm.no_grad() and torch.no_grad() (no cache in
either). Besides the case, every worker measures, with its own library, at
its own thread count:
- the GEMM peak: the best GFLOP/s of a few 2048 x 2048 square products
  (float32, and float64 too for a float64 case), after the case; the
  physical limit that the case's GFLOP/s is read against;
- the phase probe: a small fixed GEMM (PROBE) before and after the case.
  It is no peak (a GEMM-bound case can beat it); it only flags a slow phase
  of the shared machine (the second vCPU busy elsewhere: 2 threads no faster
  than 1);
- npylstm only, the GEMMs alone: the same sequence of matrix products that
  npylstm's layer makes for the case (shapes, dtypes, memory layout of
  npylstm/functional/layer.py), replayed without the elementwise work, so
  that its time over the case's time is the GEMM share.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's npylstm


def median_time(fn, min_repeats, min_seconds, max_repeats):
    """Median wall time of fn() after two warm-up calls (first-touch of workspaces)."""
    fn()
    fn()
    times, start = [], time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats
                                        or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


PROBE = (128, 256, 512)          # M, K, N of the probe GEMM, float32: 34 MFLOP, well under 1 ms


def probe_gflops(matmul, make, seconds=0.05):
    """GFLOP/s of ``matmul(a, b)`` on the PROBE shape: the median of repeats over ``seconds``."""
    M, K, N = PROBE
    a, b = make(M, K), make(K, N)
    for _ in range(3):
        matmul(a, b)
    times, end = [], time.perf_counter() + seconds
    while len(times) < 10 or time.perf_counter() < end:
        t0 = time.perf_counter()
        matmul(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * M * K * N / float(np.median(times)) / 1e9


PEAK_SIZE, PEAK_REPEATS = 2048, 4        # square GEMMs of the peak: 17 GFLOP each


def gemm_peak(matmul, make, dtypes, repeats=PEAK_REPEATS):
    """{dtype: GFLOP/s}: the best of ``repeats`` timed products of two square
    PEAK_SIZE matrices (after one warm-up), per dtype name."""
    n, out = PEAK_SIZE, {}
    for dtype in dtypes if repeats else []:
        a, b = make(n, n, dtype), make(n, n, dtype)
        matmul(a, b)
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            matmul(a, b)
            best = min(best, time.perf_counter() - t0)
        out[dtype] = 2 * n ** 3 / best / 1e9
    return out


def peak_dtypes(case):
    return sorted({"float32", case["dtype"]})


def numpy_probe():
    rng = np.random.default_rng(0)
    return probe_gflops(np.matmul, lambda m, n: rng.standard_normal((m, n)).astype(np.float32))


def torch_probe():
    import torch
    return probe_gflops(torch.mm, lambda m, n: torch.randn(m, n))


def seed_data(T, num_points=500, period=50):
    """The seed's sine windows: x (T, N, 1) time-major and the next value y (N, 1)."""
    y = np.sin(2 * np.pi * np.arange(num_points) / period)
    windows = np.stack([y[k:k + T] for k in range(num_points - T)])       # (n - T, T)
    targets = y[T:num_points][:, None]                                     # (n - T, 1)
    return windows[:-10].T[:, :, None], targets[:-10]                      # 10 held out, as the seed


def proc_status(field):
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in bytes.
    (ru_maxrss would carry over the parent's peak across fork + exec.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def current_rss():
    return proc_status("VmRSS")


def run_npylstm(case, threads):
    from threadpoolctl import threadpool_info, threadpool_limits
    threadpool_limits(threads, user_api="blas")
    import npylstm
    case["rss_start"] = current_rss()           # after the imports
    dtype = np.dtype(case["dtype"])
    probe = [numpy_probe()]
    if case["kind"] == "train":
        result = train_npylstm(case, dtype)
    elif case["kind"] in CHARLM_KINDS:
        result = CHARLM_KINDS[case["kind"]][0](case, dtype)
    else:
        result = lstm_npylstm(case, dtype)
    probe.append(numpy_probe())
    result["probe"] = probe
    rng = np.random.default_rng(0)
    result["peak"] = gemm_peak(np.matmul, lambda m, n, d: rng.standard_normal((m, n)).astype(d),
                               peak_dtypes(case), case.get("peak_repeats", PEAK_REPEATS))
    result["blas"] = [(i["internal_api"], i.get("architecture"), i["num_threads"])
                      for i in threadpool_info() if i["user_api"] == "blas"]
    return result


def lstm_npylstm(case, dtype):
    import npylstm
    T, N, I, H = case["shape"]
    m = npylstm.LSTM(I, H, num_layers=case.get("layers", 1),
                     bidirectional=case.get("bidirectional", False), dtype=dtype, rng=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, N, I)).astype(dtype)
    lengths = lengths_of(case, T, N)
    out, _ = m(x, lengths=lengths)
    grad = rng.standard_normal(out.shape).astype(dtype)

    def forward():
        with npylstm.no_grad():
            m(x, lengths=lengths)

    def forward_backward():
        m(x, lengths=lengths)
        m.backward(grad)

    result = measure(case, forward, forward_backward)
    gemms = gemm_sequences(case, dtype) if case.get("gemms", True) else {}
    for mode in gemms:
        if mode in case["modes"]:
            result["gemm_" + mode] = median_time(lambda: run_gemms(gemms[mode]), *case["repeats"])[0]
    m(x, lengths=lengths)
    result["cache"] = cache_bytes(m, T, N, H, dtype)
    if case.get("memory"):
        result["memory"] = forward_memory(case, x, lengths, dtype)
    return result


def gemm_sequences(case, dtype):
    """{"fwd": [...], "fb": [...]}: the matrix products npylstm's layer makes for
    the case, as (a, b, out) triples with the layouts of npylstm/functional/layer.py.

    fwd is the forward without a cache (_forward_no_cache): per step
    W (4H, K) [h_prev, x_t, 1] (K, n). fb is the cached forward (with trick 8,
    the input projection before the loop, where layer.py uses it) and the
    backward: per step W_hh^T (Hout, 4H) dz (4H, n), then dW as one
    (4H, T N) x (T N, K) product and dx as one (I, 4H) x (4H, T N) product.
    Arrays are filled with random numbers once; only the products are timed.
    """
    from npylstm.functional import layer
    T, N, I, H = case["shape"]
    L, D = case.get("layers", 1), 2 if case.get("bidirectional") else 1
    lengths = lengths_of(case, T, N)
    sizes = [N] * T if lengths is None else [int(np.sum(lengths > t)) for t in range(T)]
    rng = np.random.default_rng(3)
    rand = lambda *shape: (0.1 * rng.standard_normal(shape)).astype(dtype)
    fwd, fb = [], []
    for layer_index in range(L):
        I_l = I if layer_index == 0 else D * H
        K = H + I_l + 1
        for _ in range(D):
            W = rand(4 * H, K)
            a, z = rand(K, N), rand(4 * H, N)                            # no cache
            fwd += [(W, a[:, :n], z[:, :n]) for n in sizes]
            inputs, gates = rand(K, T, N), rand(T, 4 * H, N)             # cached forward
            if I_l >= layer.HOIST_MIN_INPUT:
                W_h = np.ascontiguousarray(W[:, :H])
                fb.append((W[:, H:], inputs[H:].reshape(K - H, T * N), rand(4 * H, T * N)))
                fb += [(W_h, inputs[:H, t, :n], gates[t, :, :n]) for t, n in enumerate(sizes)]
            else:
                fb += [(W, inputs[:, t, :n], gates[t, :, :n]) for t, n in enumerate(sizes)]
            W_hh_t, dz, dh = rand(H, 4 * H), rand(4 * H, N), rand(H, N)    # backward
            fb += [(W_hh_t, dz[:, :n], dh[:, :n]) for n in sizes]
            grad_z = rand(4 * H, T * N)
            fb.append((grad_z, inputs.reshape(K, T * N).T, rand(4 * H, K)))
            fb.append((W[:, H:H + I_l].T, grad_z, rand(I_l, T * N)))
    return dict(fwd=fwd, fb=fb)


def run_gemms(triples):
    for a, b, out in triples:
        np.matmul(a, b, out=out)


def forward_memory(case, x, lengths, dtype):
    """tracemalloc peak of one forward of a fresh LSTM, cached and under no_grad, in bytes."""
    import tracemalloc
    import npylstm
    T, N, I, H = case["shape"]
    peaks = {}
    for mode in ("cached", "no_grad"):
        m = npylstm.LSTM(I, H, num_layers=case.get("layers", 1),
                         bidirectional=case.get("bidirectional", False), dtype=dtype, rng=0)
        tracemalloc.start()
        tracemalloc.reset_peak()
        if mode == "no_grad":
            with npylstm.no_grad():
                out, _ = m(x, lengths=lengths)
        else:
            out, _ = m(x, lengths=lengths)
        peaks[mode] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        peaks["output"] = out.nbytes
        del out, m
    return peaks


def cache_bytes(m, T, N, H, dtype):
    """What the BPTT cache holds between forward and backward, against the minimum.

    The minimum, per layer/direction and per (t, n), is what backward cannot
    do without: the four gate activations and c (5H), and the inputs of the
    step's product, h_prev and x_t (Hout + I), for the weight gradients.
    npylstm holds in addition tanh(c) (H) and the bias column of ones (1),
    and, with a projection, o * tanh(c) (H).
    """
    held = minimum = 0
    for cache in m._cache["caches"]:
        K = cache["inputs"].shape[0]
        Hout_plus_I = K - (1 if cache["has_bias"] else 0)
        for name in ("inputs", "gates", "cells", "tanh_cells"):
            held += cache[name].nbytes
        if cache["weight_hr"] is not None:
            held += cache["h_cells"].nbytes
        minimum += (5 * H + Hout_plus_I) * T * N * dtype.itemsize
    workspace = sum(a.nbytes for ws in m._workspaces for a in ws.values())
    return dict(held=held, minimum=minimum, ratio=held / minimum, workspace=workspace)


def train_npylstm(case, dtype):
    """The seed's loop on npylstm's own model of it (npylstm.model.LSTMRegressor)."""
    import npylstm
    from npylstm.model import LSTMRegressor
    init = dict(np.load(case["init"]))
    T, epochs = case["seq_len"], case["epochs"]
    x, y = seed_data(T)
    x, y = x.astype(dtype), y.astype(dtype)
    model = LSTMRegressor(1, case["hidden"], 1, dtype=dtype)
    model.load_state_dict(init)
    opt = npylstm.Adam(model.parameters(), lr=case["lr"])
    crit = npylstm.MSELoss()
    losses = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        opt.zero_grad()
        loss = crit(model(x), y)                                          # last step -> Linear
        losses.append(float(loss))
        model.backward(crit.backward())
        opt.step()
    seconds = time.perf_counter() - t0
    return dict(train=seconds, final_loss=losses[-1], first_loss=losses[0])


def run_torch(case, threads):
    import torch
    torch.set_num_threads(threads)
    case["rss_start"] = current_rss()           # after the imports
    dtype = getattr(torch, case["dtype"])
    probe = [torch_probe()]
    if case["kind"] == "train":
        result = train_torch(case, dtype)
    elif case["kind"] in CHARLM_KINDS:
        result = CHARLM_KINDS[case["kind"]][1](case, dtype)
    else:
        result = lstm_torch(case, dtype)
    probe.append(torch_probe())
    result["probe"] = probe
    result["peak"] = gemm_peak(torch.mm, lambda m, n, d: torch.randn(m, n, dtype=getattr(torch, d)),
                               peak_dtypes(case), case.get("peak_repeats", PEAK_REPEATS))
    return result


def lstm_torch(case, dtype):
    import torch
    T, N, I, H = case["shape"]
    torch.manual_seed(0)
    m = torch.nn.LSTM(I, H, num_layers=case.get("layers", 1),
                      bidirectional=case.get("bidirectional", False)).to(dtype)
    x = torch.randn(T, N, I, dtype=dtype)
    lengths = lengths_of(case, T, N)

    def run(xin):
        if lengths is None:
            return m(xin)[0]
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xin, torch.as_tensor(lengths), enforce_sorted=False)
        return torch.nn.utils.rnn.pad_packed_sequence(m(packed)[0], total_length=T)[0]

    with torch.no_grad():
        grad = torch.randn_like(run(x))

    def forward():
        with torch.no_grad():
            run(x)

    def forward_backward():
        run(x).backward(grad)

    return measure(case, forward, forward_backward)


def train_torch(case, dtype):
    import torch
    init = dict(np.load(case["init"]))
    T, epochs = case["seq_len"], case["epochs"]
    x, y = seed_data(T)
    x = torch.tensor(x, dtype=dtype)
    y = torch.tensor(y, dtype=dtype)
    lstm = torch.nn.LSTM(1, case["hidden"]).to(dtype)
    linear = torch.nn.Linear(case["hidden"], 1).to(dtype)
    lstm.load_state_dict({k[5:]: torch.tensor(v) for k, v in init.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: torch.tensor(v) for k, v in init.items() if k.startswith("linear.")})
    opt = torch.optim.Adam(list(lstm.parameters()) + list(linear.parameters()), lr=case["lr"])
    crit = torch.nn.MSELoss()
    losses = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        opt.zero_grad()
        out, _ = lstm(x)
        loss = crit(linear(out[-1]), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    return dict(train=seconds, final_loss=losses[-1], first_loss=losses[0])


# The character model (issue 16): the default shape of `python -m npylstm.charlm train`
# (npylstm/charlm/train.py: CharLMConfig), with random ids over V characters.

def charlm_ids(case):
    """Random (T, B) inputs and targets of one chunk, the same in both processes."""
    rng = np.random.default_rng(5)
    T, B, V = case["seq_len"], case["batch"], case["vocab"]
    return rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))


def charlm_step_npylstm(case, dtype):
    """Median time of npylstm.charlm.train_step on one chunk: forward, cross-entropy,
    backward, clip_grad_norm_(clip), Adam step; the state carried from call to call."""
    import npylstm
    from npylstm.charlm import CharLM, train_step
    model = CharLM(case["vocab"], case["hidden"], case["layers"], case["embed"], dtype=dtype, rng=0)
    opt = npylstm.Adam(model.parameters(), lr=case["lr"])
    crit = npylstm.CrossEntropyLoss()
    inputs, targets = charlm_ids(case)
    carried = [None]

    def step():
        loss, carried[0] = train_step(model, opt, crit, inputs, targets, carried[0], case["clip"])

    seconds, repeats = median_time(step, *case["repeats"])
    return dict(step=seconds, step_repeats=repeats)


def torch_charlm(case, dtype):
    """nn.Embedding -> nn.LSTM -> nn.Linear, torch's default initialisation."""
    import torch
    torch.manual_seed(0)
    emb = torch.nn.Embedding(case["vocab"], case["embed"]).to(dtype)
    lstm = torch.nn.LSTM(case["embed"], case["hidden"], case["layers"]).to(dtype)
    linear = torch.nn.Linear(case["hidden"], case["vocab"]).to(dtype)
    return emb, lstm, linear


def charlm_step_torch(case, dtype):
    """The same step in torch: forward, F.cross_entropy, backward, clip_grad_norm_, Adam;
    the state carried and detached (word_language_model's repackage_hidden)."""
    import torch
    import torch.nn.functional as F
    emb, lstm, linear = torch_charlm(case, dtype)
    params = [p for m in (emb, lstm, linear) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=case["lr"])
    inputs, targets = (torch.as_tensor(a) for a in charlm_ids(case))
    carried = [None]

    def step():
        state = None if carried[0] is None else tuple(s.detach() for s in carried[0])
        out, carried[0] = lstm(emb(inputs), state)
        loss = F.cross_entropy(linear(out).reshape(-1, case["vocab"]), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, case["clip"])
        opt.step()

    seconds, repeats = median_time(step, *case["repeats"])
    return dict(step=seconds, step_repeats=repeats)


def charlm_vocab(V):
    """V distinct characters (tab, newline and printable ASCII, then further code points)."""
    from npylstm.text import Vocabulary
    chars = ["\t", "\n"] + [chr(c) for c in range(32, 127)]
    chars += [chr(c) for c in range(161, 161 + max(0, V - len(chars)))]
    return Vocabulary("".join(sorted(chars[:V])))


def charlm_sample_npylstm(case, dtype):
    """Median time of npylstm.charlm.sampling.sample drawing case["length"] characters
    from an untrained CharLM (random weights: the time does not depend on them)."""
    from npylstm.charlm import CharLM
    from npylstm.charlm.sampling import sample
    model = CharLM(case["vocab"], case["hidden"], case["layers"], case["embed"], dtype=dtype, rng=0)
    vocab = charlm_vocab(case["vocab"])
    seconds, repeats = median_time(lambda: sample(model, vocab, case["length"], seed=0), *case["repeats"])
    return dict(sample=seconds, sample_repeats=repeats)


def charlm_sample_torch(case, dtype):
    """The same in torch: one-step nn.LSTM calls with the state carried, softmax and
    torch.multinomial, under no_grad; it reads one start character as sample does."""
    import torch
    emb, lstm, linear = torch_charlm(case, dtype)
    torch.manual_seed(0)

    @torch.no_grad()
    def sample():
        x, state = torch.zeros(1, 1, dtype=torch.long), None
        drawn = []
        for _ in range(case["length"]):
            out, state = lstm(emb(x), state)                          # (1, 1, H): N = 1
            p = torch.softmax(linear(out[0, 0]), dim=-1)
            x = torch.multinomial(p, 1).view(1, 1)
            drawn.append(int(x))
        return drawn

    seconds, repeats = median_time(sample, *case["repeats"])
    return dict(sample=seconds, sample_repeats=repeats)


CHARLM_KINDS = {"charlm_step": (charlm_step_npylstm, charlm_step_torch),
                "charlm_sample": (charlm_sample_npylstm, charlm_sample_torch)}


def lengths_of(case, T, N):
    how = case.get("lengths")
    if how is None:
        return None
    if how == "full":
        return np.full(N, T)
    return np.random.default_rng(2).integers(1, T + 1, N)                  # "random"


def measure(case, forward, forward_backward):
    r = case["repeats"]
    result = {}
    for mode, fn in (("fwd", forward), ("fb", forward_backward)):
        if mode in case["modes"]:
            result[mode], result[mode + "_repeats"] = median_time(fn, *r)
    result["peak_rss"] = proc_status("VmHWM")
    result["peak_rss_over_start"] = result["peak_rss"] - case["rss_start"]
    return result


def main():
    impl, case = sys.argv[1], json.loads(sys.argv[2])
    fn = run_npylstm if impl == "npylstm" else run_torch
    print(json.dumps(fn(case, case["threads"])))


if __name__ == "__main__":
    main()
