"""The forward under npylstm.no_grad() against the cached forward, paired in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/no_grad_speed.py [THREADS [T N I H]]

npylstm alone (float32, the seed's shape and 1 BLAS thread by default): the
two forwards alternate call by call, so that the machine's drifts hit both
alike, and the median of the paired ratios is printed with both medians.
(The comparison with torch is benchmarks/run.py.)
"""
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import npylstm  # noqa: E402


def main(argv):
    threads = int(argv[0]) if argv else 1
    T, N, I, H = (int(v) for v in argv[1:5]) if len(argv) >= 5 else (40, 450, 1, 100)
    threadpool_limits(threads, user_api="blas")
    lstm = npylstm.LSTM(I, H, rng=0)
    x = np.random.default_rng(1).standard_normal((T, N, I)).astype(np.float32)

    def cached():
        lstm(x)

    def no_grad():
        with npylstm.no_grad():
            lstm(x)

    for f in (cached, no_grad, cached, no_grad):                # warm-up: workspaces exist
        f()
    times = {cached: [], no_grad: []}
    for r in range(25):
        for f in (cached, no_grad) if r % 2 == 0 else (no_grad, cached):
            t0 = time.perf_counter()
            f()
            times[f].append(time.perf_counter() - t0)
    ratio = np.median(np.array(times[no_grad]) / np.array(times[cached]))
    print(f"T={T} N={N} I={I} H={H}, {threads} thread(s): cached forward "
          f"{1e3 * np.median(times[cached]):.2f} ms, no_grad {1e3 * np.median(times[no_grad]):.2f} ms, "
          f"paired ratio {ratio:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
