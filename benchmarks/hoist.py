"""Trick 8 of npylstm/functional/layer.py, the input projection before the loop, on and off.

    python benchmarks/hoist.py                # the shapes below, 1 and 2 threads
    python benchmarks/hoist.py --pairs 31 --procs 3

Forward + backward (the cached forward is the one trick 8 changes), float32.
Each shape and thread count runs in --procs fresh processes; inside one, the
two settings alternate call by call (layer.HOIST_MIN_INPUT set to 1, i.e. on
for every layer, or to infinity, off), so that the machine's drifts hit both
alike. Printed: the median of the per-pair ratios on / off, and their range
over the processes. layer.HOIST_MIN_INPUT is chosen from these figures.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [   # T, N, I, H, layers, bidirectional
    (40, 450, 1, 100, 1, False),      # the seed: I = 1
    (100, 64, 32, 256, 1, False),
    (40, 64, 64, 128, 1, False),
    (40, 64, 256, 128, 1, False),     # layer 1 of the 2-layer bidirectional case alone (I = 2H)
    (40, 64, 32, 128, 2, True),       # the whole 2-layer bidirectional case
    (50, 128, 256, 512, 1, False),
]
OFF, ON = float("inf"), 1


def one_process(threads, shape, pairs):
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads, user_api="blas")
    sys.path.insert(0, str(ROOT))
    import npylstm
    from npylstm.functional import layer
    T, N, I, H, L, bidirectional = shape
    lstm = npylstm.LSTM(I, H, num_layers=L, bidirectional=bidirectional, rng=0)
    x = np.random.default_rng(1).standard_normal((T, N, I)).astype(np.float32)
    out, _ = lstm(x)
    grad = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)

    def timed(setting):
        layer.HOIST_MIN_INPUT = setting
        t0 = time.perf_counter()
        lstm(x)
        lstm.backward(grad)
        return time.perf_counter() - t0

    for setting in (OFF, ON, OFF, ON):                     # warm-up: workspaces of both
        timed(setting)
    off, on = [], []
    for k in range(pairs):
        first, second = (OFF, ON) if k % 2 == 0 else (ON, OFF)
        t = {first: timed(first), second: timed(second)}
        off.append(t[OFF])
        on.append(t[ON])
    ratios = np.array(on) / np.array(off)
    return dict(off=float(np.median(off)), on=float(np.median(on)), ratio=float(np.median(ratios)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=21)
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shapes", default=None, metavar="K,K",
                    help="indices into SHAPES to run (default: all)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        threads, shape = json.loads(args.child)
        print(json.dumps(one_process(threads, tuple(shape), args.pairs)))
        return
    print("| shape (T, N, I, H, layers, bidir) | threads | off ms | on ms | on / off, median [range over processes] |")
    print("|---|---|---|---|---|")
    chosen = SHAPES if not args.shapes else [SHAPES[int(k)] for k in args.shapes.split(",")]
    for shape in chosen:
        for threads in args.threads:
            runs = []
            for _ in range(args.procs):
                proc = subprocess.run([sys.executable, __file__, "--pairs", str(args.pairs),
                                       "--child", json.dumps([threads, shape])],
                                      capture_output=True, text=True, check=True)
                runs.append(json.loads(proc.stdout))
            r = [run["ratio"] for run in runs]
            print(f"| {shape} | {threads} | {1e3 * np.median([x['off'] for x in runs]):.2f} "
                  f"| {1e3 * np.median([x['on'] for x in runs]):.2f} "
                  f"| {np.median(r):.3f} [{min(r):.3f}-{max(r):.3f}] |", flush=True)


if __name__ == "__main__":
    main()
