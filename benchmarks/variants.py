"""What a variant costs: LSTM forward+backward time of each variant / the default.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/variants.py [--rounds 5]

At the seed's shape (T=40, N=450, I=1, H=100, float32), each measurement runs
in a fresh process: the median of ``--repeats`` forward+backward calls after
two warm-up calls. Every round runs, for each variant, a default process and
then the variant's process, so both see the same phase of the shared machine;
the ratio of the pair is taken per round and the median over rounds is
reported, with the median times. The BLAS kernel (threadpoolctl) is printed.

On a shared machine whose other jobs keep the cores busy, wall time mostly
measures the neighbours. So BLAS runs on one thread by default and the ratio
is taken of the process's CPU time (time.process_time), which counts only the
work of the measured process; the wall-time ratio is printed beside it.
Needs threadpoolctl. Writes nothing; prints a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

VARIANTS = {
    "peephole": dict(peephole=True),
    "input_forget": dict(input_forget=True),
    "clip": dict(clip=1.0),
    "no input_gate": dict(ablate=("input_gate",)),
    "no forget_gate": dict(ablate=("forget_gate",)),
    "no output_gate": dict(ablate=("output_gate",)),
    "no input_activation": dict(ablate=("input_activation",)),
    "no output_activation": dict(ablate=("output_activation",)),
    "CIFG (peephole + input_forget)": dict(peephole=True, input_forget=True),
    "peephole + input_forget + clip": dict(peephole=True, input_forget=True, clip=1.0),
}


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(options, shape, repeats, threads, path):
    """Time forward+backward of one LSTM in this process; print one JSON line."""
    from threadpoolctl import threadpool_info, threadpool_limits
    if threads:
        threadpool_limits(threads, user_api="blas")
    sys.path.insert(0, path)
    import npylstm
    assert os.path.dirname(os.path.dirname(os.path.abspath(npylstm.__file__))) == os.path.abspath(path)
    T, N, I, H = shape
    lstm = npylstm.LSTM(I, H, dtype=np.float32, rng=0, **options)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    out, _ = lstm(x)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    cpu, wall = [], []
    for k in range(repeats + 2):
        c0, w0 = time.process_time(), time.perf_counter()
        lstm(x)
        lstm.backward(grad)
        if k >= 2:                              # two warm-up calls
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    blas = [{key: b.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
            for b in threadpool_info() if b["user_api"] == "blas"]
    print(json.dumps(dict(cpu=float(np.median(cpu)), wall=float(np.median(wall)), blas=blas)))


def measure(options, args, path=HERE):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(options), "--path", path,
           "--repeats", str(args.repeats), "--threads", str(args.threads),
           "--shape", *map(str, args.shape)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: the BLAS default)")
    parser.add_argument("--shape", type=int, nargs=4, default=[40, 450, 1, 100], metavar=("T", "N", "I", "H"))
    parser.add_argument("--only", nargs="*", help="names of VARIANTS to run (default: all)")
    parser.add_argument("--before", metavar="DIR", help="compare the default path with npylstm in DIR")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", default=HERE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker(json.loads(args.worker), args.shape, args.repeats, args.threads, args.path)

    names = args.only or list(VARIANTS)
    if args.before:
        names = [f"this checkout's default, vs {args.before}"]
    ratios = {(kind, name): [] for kind in ("cpu", "wall") for name in names}
    times = {(kind, name): [] for kind in ("cpu", "wall") for name in ["default"] + names}
    blas = None
    for r in range(args.rounds):
        for name in names:
            if args.before:
                base, var = measure({}, args, args.before), measure({}, args)
            else:
                base, var = measure({}, args), measure(VARIANTS[name], args)
            blas = base["blas"]
            for kind in ("cpu", "wall"):
                times[kind, "default"].append(base[kind])
                times[kind, name].append(var[kind])
                ratios[kind, name].append(var[kind] / base[kind])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"shape T, N, I, H = {tuple(args.shape)}, float32, forward+backward; "
          f"{args.rounds} rounds x {args.repeats} repeats; BLAS: {blas}; env: {env}")
    print()
    print("| variant | CPU ms | ratio (CPU) | min / max | wall ms | ratio (wall) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    med = lambda key: 1e3 * np.median(times[key])
    print(f"| default | {med(('cpu', 'default')):.1f} | 1 | | {med(('wall', 'default')):.1f} | 1 |")
    for name in names:
        q, w = ratios["cpu", name], ratios["wall", name]
        print(f"| {name} | {med(('cpu', name)):.1f} | {np.median(q):.2f} | {min(q):.2f} / {max(q):.2f} "
              f"| {med(('wall', name)):.1f} | {np.median(w):.2f} |")

if __name__ == "__main__":
    main()
