"""A variant's layer against the code before trick 9 (npylstm/functional/layer.py), paired in one process.

    git worktree add /tmp/before 737ce39~1      # the layer before trick 9
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/trick9.py /tmp/before

The older checkout's npylstm is copied to a temporary folder under another
package name, so both layers load into one process; forward+backward of one
layer (float32, a gradient for every output, one BLAS thread) then alternates
call by call between them, so that the shared machine's drifts hit both alike.
Printed per shape and variant: the median CPU time (time.process_time) of
each and the median and quartiles of the per-pair ratios new / old.
"""
import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(40, 64, 2, 32), (40, 450, 1, 100)]      # T, N, I, H: the study's, the seed's
VARIANTS = {"peephole": dict(peephole=True),
            "CIFG": dict(peephole=True, input_forget=True),
            "peephole + clip": dict(peephole=True, clip=1.0),
            "no input_gate": dict(ablate=("input_gate",))}


def pair(old, new, shape, options, pairs, rng):
    T, N, I, H = shape
    f32 = np.float32
    x = rng.random((T, N, I)).astype(f32)
    h0, c0 = np.zeros((N, H), f32), np.zeros((N, H), f32)
    w_ih = rng.uniform(-0.3, 0.3, (4 * H, I)).astype(f32)
    w_hh = rng.uniform(-0.3, 0.3, (4 * H, H)).astype(f32)
    b = rng.uniform(-0.3, 0.3, 4 * H).astype(f32)
    if options.get("peephole"):
        options = {**options, "peephole": tuple(rng.uniform(-0.3, 0.3, H).astype(f32) for _ in range(3))}
    grad_out = rng.standard_normal((T, N, H)).astype(f32)

    def run(layer, workspace):
        *_, cache = layer.lstm_layer_forward(x, h0, c0, w_ih, w_hh, b, b.copy(), workspace=workspace,
                                             **options)
        return layer.lstm_layer_backward(grad_out, None, None, cache, workspace=workspace)

    ws_old, ws_new = {}, {}
    a, b_ = run(old, ws_old), run(new, ws_new)
    assert np.allclose(a[0], b_[0], rtol=1e-4, atol=1e-5), "the two layers disagree"
    t_old, t_new = [], []
    for _ in range(pairs):
        start = time.process_time()
        run(old, ws_old)
        t_old.append(time.process_time() - start)
        start = time.process_time()
        run(new, ws_new)
        t_new.append(time.process_time() - start)
    return np.array(t_old), np.array(t_new)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="a checkout of the code before trick 9")
    parser.add_argument("--pairs", type=int, default=30)
    args = parser.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits
    tmp = tempfile.mkdtemp()
    shutil.copytree(Path(args.before) / "npylstm", Path(tmp) / "npylstm_before")
    sys.path.insert(0, tmp)
    sys.path.insert(0, str(ROOT))
    old = importlib.import_module("npylstm_before.functional.layer")
    new = importlib.import_module("npylstm.functional.layer")
    print("BLAS:", [(i["internal_api"], i["version"], i["architecture"]) for i in threadpool_info()])
    print("| shape (T, N, I, H) | variant | before ms | now ms | now / before, median [quartiles] |")
    print("| --- | --- | ---: | ---: | --- |")
    rng = np.random.default_rng(0)
    with threadpool_limits(1, user_api="blas"):
        for shape in SHAPES:
            for name, options in VARIANTS.items():
                t_old, t_new = pair(old, new, shape, options, args.pairs, rng)
                r = t_new / t_old
                print(f"| {shape} | {name} | {np.median(t_old) * 1e3:.2f} | {np.median(t_new) * 1e3:.2f} "
                      f"| {np.median(r):.3f} [{np.percentile(r, 25):.3f}-{np.percentile(r, 75):.3f}] |",
                      flush=True)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
