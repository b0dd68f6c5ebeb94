"""Finite-difference gradient checks, for npylstm and for your own functions.

The check: draw a random upstream gradient G for every output, take the
scalar loss = sum(G * output), and compare each analytic gradient with
central differences (loss(a + eps) - loss(a - eps)) / (2 eps) taken element
by element in float64. A random G (not ones) makes every output element
matter with its own weight, so an error that cancels under a plain sum is
still seen.

    python -m npylstm.gradcheck --num-layers 2 --bidirectional --proj-size 2

checks npylstm's own LSTM in that configuration and prints the table;
``--all`` runs every option.
"""
import argparse
import itertools
import sys
from dataclasses import dataclass

import numpy as np


@dataclass
class GradcheckResult:
    """The worst disagreement for one array.

    - max_abs_error: max |analytic - numeric|
    - max_rel_error: max_abs_error / max(max |analytic|, max |numeric|)
    """
    name: str
    max_abs_error: float
    max_rel_error: float


def _flatten(outputs):
    if isinstance(outputs, (tuple, list)):
        return [a for o in outputs for a in _flatten(o)]
    return [np.asarray(outputs)]


def _unflatten_like(outputs, flat):
    if isinstance(outputs, (tuple, list)):
        result = []
        for o in outputs:
            n = len(_flatten(o))
            result.append(_unflatten_like(o, flat[:n]))
            flat = flat[n:]
        return type(outputs)(result)
    return flat[0]


def gradcheck(forward, backward, inputs, *, eps=1e-6, seed=0):
    """Compare analytic gradients with central finite differences.

    Inputs:
    - forward: callable() -> an array or a (nested) tuple of arrays. It must
      read the arrays of ``inputs``, which the check perturbs in place.
    - backward: callable(grad_outputs) -> dict name -> analytic gradient,
      where grad_outputs has the structure of forward's result
    - inputs: dict name -> float64 ndarray, the arrays to check
    - eps: the finite-difference step
    - seed: seeds the random upstream gradient

    Returns:
    - list of GradcheckResult, one per entry of ``inputs``
    """
    for name, a in inputs.items():
        if a.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 arrays, {name!r} is {a.dtype}")
    rng = np.random.default_rng(seed)
    outputs = forward()
    upstream = [rng.standard_normal(a.shape) for a in _flatten(outputs)]
    analytic = backward(_unflatten_like(outputs, upstream))

    def loss():
        return sum(float(np.sum(g * a)) for g, a in zip(upstream, _flatten(forward())))

    results = []
    for name, array in inputs.items():
        numeric = np.zeros_like(array)
        flat, grad = array.reshape(-1), numeric.reshape(-1)
        if not np.shares_memory(flat, array):
            raise ValueError(f"gradcheck needs contiguous arrays, {name!r} is not")
        for k in range(flat.size):
            original = flat[k]
            flat[k] = original + eps
            plus = loss()
            flat[k] = original - eps
            minus = loss()
            flat[k] = original
            grad[k] = (plus - minus) / (2 * eps)
        a = np.asarray(analytic[name], dtype=np.float64)
        if a.shape != array.shape:
            raise ValueError(f"gradcheck: gradient of {name!r} has shape {a.shape}, "
                             f"expected {array.shape}")
        abs_err = float(np.max(np.abs(a - numeric), initial=0.0))
        scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
        results.append(GradcheckResult(name, abs_err, abs_err / scale if scale > 0 else abs_err))
    return results


def check_lstm(lstm, x, hx=None, lengths=None, *, eps=1e-6, seed=0):
    """gradcheck an npylstm.LSTM (float64): input, h_0, c_0 and every parameter.

    Dropout masks are drawn once and reused for every perturbed forward, so
    the check sees one fixed function.
    """
    import copy

    x = np.array(x, dtype=np.float64)
    arrays = {"input": x}
    if hx is not None:
        arrays["h_0"], arrays["c_0"] = (np.array(a, dtype=np.float64) for a in hx)
    params = dict(lstm.named_parameters())
    arrays.update((name, p.data) for name, p in params.items())
    rng_state = copy.deepcopy(lstm._rng.bit_generator.state)

    def forward():
        lstm._rng.bit_generator.state = rng_state        # the same dropout masks every time
        state = None if hx is None else (arrays["h_0"], arrays["c_0"])
        return lstm(x, state, lengths=lengths)

    def backward(grads):
        lstm.zero_grad()
        grad_output, (grad_h_n, grad_c_n) = grads
        grad_x, (grad_h0, grad_c0) = lstm.backward(grad_output, (grad_h_n, grad_c_n))
        result = {"input": grad_x, "h_0": grad_h0, "c_0": grad_c0}
        result.update((name, p.grad.copy()) for name, p in params.items())
        return result

    return gradcheck(forward, backward, arrays, eps=eps, seed=seed)


def format_table(results):
    """The results as an aligned text table."""
    width = max([len("array")] + [len(r.name) for r in results])
    lines = [f"{'array':<{width}}  {'max abs error':>13}  {'max rel error':>13}"]
    lines += [f"{r.name:<{width}}  {r.max_abs_error:13.3e}  {r.max_rel_error:13.3e}" for r in results]
    return "\n".join(lines)


def _lstm_case(num_layers, bidirectional, proj_size, bias, batch_first, unbatched, packed,
               dropout, T, N, I, H, seed):
    from .lstm import LSTM

    lstm = LSTM(I, H, num_layers, bias=bias, batch_first=batch_first, dropout=dropout,
                bidirectional=bidirectional, proj_size=proj_size, dtype=np.float64, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for p in lstm.parameters():                       # distinct, non-zero biases included
        p.data[...] = rng.uniform(-0.8, 0.8, p.shape)
    D, Hout = (2 if bidirectional else 1), proj_size or H
    if unbatched:
        x = rng.standard_normal((T, I))
        hx = (rng.standard_normal((D * num_layers, Hout)), rng.standard_normal((D * num_layers, H)))
        lengths = None
    else:
        x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
        hx = (rng.standard_normal((D * num_layers, N, Hout)),
              rng.standard_normal((D * num_layers, N, H)))
        lengths = rng.integers(1, T + 1, size=N) if packed else None
        if packed:
            lengths[0] = T
    return lstm, x, hx, lengths


def main(argv=None):
    """Command line: check one LSTM configuration (or --all); exit 0 when every error is within --tol."""
    parser = argparse.ArgumentParser(
        prog="python -m npylstm.gradcheck",
        description="Finite-difference check of npylstm.LSTM's gradients (float64).")
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--proj-size", type=int, default=0)
    parser.add_argument("--no-bias", action="store_true")
    parser.add_argument("--batch-first", action="store_true")
    parser.add_argument("--unbatched", action="store_true")
    parser.add_argument("--packed", action="store_true", help="random lengths per sequence")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=4, help="T")
    parser.add_argument("--batch", type=int, default=3, help="N")
    parser.add_argument("--input-size", type=int, default=3, help="I")
    parser.add_argument("--hidden-size", type=int, default=4, help="H")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="largest max rel error that passes (default 1e-6)")
    parser.add_argument("--all", action="store_true", help="every combination of the options")
    args = parser.parse_args(argv)
    for name in ("num_layers", "steps", "batch", "input_size", "hidden_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.unbatched and args.packed:
        parser.error("--packed needs a batch (drop --unbatched)")

    if args.all:
        configs = [dict(num_layers=L, bidirectional=bd, proj_size=P, bias=b, batch_first=bf,
                        unbatched=ub, packed=pk, dropout=dr)
                   for L, bd, P, b, bf, ub, pk, dr in itertools.product(
                       (1, 2), (False, True), (0, 2), (True, False), (False, True),
                       (False, True), (False, True), (0.0, 0.5))
                   if not (ub and (pk or bf)) and not (dr and L == 1)]
    else:
        configs = [dict(num_layers=args.num_layers, bidirectional=args.bidirectional,
                        proj_size=args.proj_size, bias=not args.no_bias,
                        batch_first=args.batch_first, unbatched=args.unbatched,
                        packed=args.packed, dropout=args.dropout)]
    if any(c["proj_size"] >= args.hidden_size for c in configs):
        parser.error("--proj-size must be smaller than --hidden-size")

    worst = 0.0
    for config in configs:
        lstm, x, hx, lengths = _lstm_case(T=args.steps, N=args.batch, I=args.input_size,
                                          H=args.hidden_size, seed=args.seed, **config)
        results = check_lstm(lstm, x, hx, lengths, seed=args.seed)
        case_worst = max(r.max_rel_error for r in results)
        worst = max(worst, case_worst)
        label = ", ".join(f"{k}={v}" for k, v in config.items())
        if args.all:
            print(f"{'ok  ' if case_worst <= args.tol else 'FAIL'} {case_worst:9.2e}  {label}")
        else:
            print(f"LSTM({args.input_size}, {args.hidden_size}, {label}), "
                  f"T={args.steps}, N={args.batch}")
            print(format_table(results))
    print(f"worst max rel error: {worst:.3e} ({'pass' if worst <= args.tol else 'FAIL'}, "
          f"tolerance {args.tol:g})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
