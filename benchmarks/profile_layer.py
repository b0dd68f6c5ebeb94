"""Where the time of one LSTM layer goes, line by line.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_layer.py [T N I H]

Loads a copy of npylstm/functional/layer.py in which every statement of the
two time loops is followed by a timer, runs forward + backward of an
npylstm.LSTM (float32, the seed's shape by default) through that copy, and
prints the milliseconds per call spent on each line, with the time of the
whole forward and backward for scale. The timers add a little overhead of
their own; the package itself is not changed.
"""
import sys
import time
import types
from pathlib import Path

import numpy as np

import npylstm
from npylstm import lstm as lstm_module

LAYER = Path(npylstm.__file__).parent / "functional" / "layer.py"


def instrumented_layer():
    """layer.py with `_t0 = _tick(label, _t0)` after each statement of its time loops."""
    out, in_loop, label = [], False, ""
    for line in LAYER.read_text().splitlines():
        stripped = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        if stripped.startswith("for t, n, t_prev, n_prev in"):
            label = "forward" if "reversed" not in stripped else "backward"
            out += [line, indent + "    _t0 = _time()"]
            in_loop = True
            continue
        if in_loop and not stripped:
            in_loop = False
        out.append(line)
        if in_loop and not stripped.startswith(("if ", "#")) and not stripped.endswith(":"):
            code = stripped.split("#")[0].strip()
            out.append(f"{indent}_t0 = _tick({(label + ': ' + code)!r}, _t0)")
    module = types.ModuleType("layer_instrumented")
    module.__dict__.update(_time=time.perf_counter, ACC={})

    def tick(key, t0, acc=module.ACC):
        t1 = time.perf_counter()
        acc[key] = acc.get(key, 0.0) + t1 - t0
        return t1

    module._tick = tick
    exec(compile("\n".join(out), str(LAYER), "exec"), module.__dict__)
    return module


def main(argv):
    T, N, I, H = (int(a) for a in argv) if argv else (40, 450, 1, 100)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    lstm = npylstm.LSTM(I, H, rng=0)
    grad = rng.standard_normal((T, N, H)).astype(np.float32)

    def run():
        lstm(x)
        lstm.backward(grad)

    for _ in range(3):
        run()
    repeats = 10
    t0 = time.perf_counter()
    for _ in range(repeats):
        run()
    plain = (time.perf_counter() - t0) / repeats

    layer = instrumented_layer()
    saved = lstm_module.F.lstm_layer_forward, lstm_module.F.lstm_layer_backward
    lstm_module.F.lstm_layer_forward = layer.lstm_layer_forward
    lstm_module.F.lstm_layer_backward = layer.lstm_layer_backward
    try:
        for _ in range(3):
            run()
        layer.ACC.clear()
        for _ in range(repeats):
            run()
    finally:
        lstm_module.F.lstm_layer_forward, lstm_module.F.lstm_layer_backward = saved
    print(f"LSTM({I}, {H}), T={T}, N={N}, float32: forward + backward {plain * 1e3:.2f} ms "
          f"(without timers)")
    print(f"{'ms':>7}  line")
    for key, seconds in layer.ACC.items():
        print(f"{seconds / repeats * 1e3:7.2f}  {key}")
    print(f"{sum(layer.ACC.values()) / repeats * 1e3:7.2f}  all timed lines (the rest: GEMMs and "
          "copies before and after the loops, module overhead)")


if __name__ == "__main__":
    main(sys.argv[1:])
