"""Does lengths=None cost anything extra? npylstm alone, paired in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/lengths_overhead.py [rounds]

Forward + backward at the seed's shape (T=40, N=450, I=1, H=100, float32)
with lengths=None and with every length equal to T (the same numbers through
the packed path), alternating the two call by call so that the machine's
drifts hit both alike. Prints the medians and the median of the paired
ratios. (Only npylstm runs here, so one process is fair; the comparison with
torch is benchmarks/run.py.)
"""
import sys
import time

import numpy as np

import npylstm


def main(rounds=25):
    T, N, I, H = 40, 450, 1, 100
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    grad = rng.standard_normal((T, N, H)).astype(np.float32)
    lstm = npylstm.LSTM(I, H, rng=0)
    cases = {"lengths=None": None, "every length = T": np.full(N, T)}
    times = {name: [] for name in cases}

    def run(lengths):
        t0 = time.perf_counter()
        lstm(x, lengths=lengths)
        lstm.backward(grad)
        return time.perf_counter() - t0

    for lengths in cases.values():                                  # warm-up: workspaces
        run(lengths)
        run(lengths)
    for r in range(rounds):
        for name in (cases if r % 2 == 0 else reversed(list(cases))):
            times[name].append(run(cases[name]))
    for name, t in times.items():
        print(f"{name:>18}: {np.median(t) * 1e3:7.2f} ms (median of {rounds})")
    ratio = np.median(np.array(times["every length = T"]) / np.array(times["lengths=None"]))
    print(f"every length = T / lengths=None, median of paired ratios: {ratio:.3f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
