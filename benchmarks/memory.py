"""Peak memory of one LSTM forward, with the BPTT cache and under npylstm.no_grad().

    python benchmarks/memory.py [T N I H] [--dtype float32|float64]

Each measurement runs in a fresh process (so the two cannot share freed
memory) on a fresh npylstm.LSTM, the seed's shape by default (T=40, N=450,
I=1, H=100). It prints the tracemalloc peak of the call (everything NumPy
allocates during it, the returned output included), the output's own size,
and the growth of the process's peak resident memory (VmHWM) over the call.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, tracemalloc
sys.path.insert(0, {root!r})
import numpy as np
import npylstm

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

T, N, I, H = {shape!r}
dtype = np.dtype({dtype!r})
lstm = npylstm.LSTM(I, H, dtype=dtype, rng=0)
x = np.random.default_rng(0).standard_normal((T, N, I)).astype(dtype)
rss = status("VmRSS")
tracemalloc.start()
if {no_grad!r}:
    with npylstm.no_grad():
        out, _ = lstm(x)
else:
    out, _ = lstm(x)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps(dict(peak=peak, output=out.nbytes, rss=status("VmHWM") - rss)))
"""


def measure(shape, dtype, no_grad):
    code = CHILD.format(root=str(ROOT), shape=tuple(shape), dtype=dtype, no_grad=no_grad)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shape", nargs="*", type=int, default=[40, 450, 1, 100], metavar="T N I H")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    if len(args.shape) != 4 or min(args.shape) < 1:
        ap.error("give four positive sizes T N I H")
    T, N, I, H = args.shape
    print(f"LSTM({I}, {H}), T={T}, N={N}, {args.dtype}: one forward of a fresh module")
    print("| forward | tracemalloc peak MB | output MB | peak minus output MB | peak RSS growth MB |")
    print("|---|---|---|---|---|")
    for label, no_grad in (("cached (training)", False), ("npylstm.no_grad()", True)):
        m = measure(args.shape, args.dtype, no_grad)
        print(f"| {label} | {m['peak'] / 1e6:.2f} | {m['output'] / 1e6:.2f} "
              f"| {(m['peak'] - m['output']) / 1e6:.2f} | {m['rss'] / 1e6:.1f} |")
    itemsize = 4 if args.dtype == "float32" else 8
    print(f"(N H = {N * H} numbers = {N * H * itemsize / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
