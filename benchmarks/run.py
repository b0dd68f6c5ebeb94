"""npylstm against torch.nn.LSTM on the CPU, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick]

Rules, so that the ratios mean something on a small, noisy machine:
- both use the same number of threads (--threads, default 2): torch through
  torch.set_num_threads, numpy's BLAS through threadpoolctl;
- every measurement runs in a fresh process that imports one implementation
  only (benchmarks/worker.py), and the two implementations alternate,
  A B then B A, for --rounds rounds;
- a time is the median over repeats inside a process, then the median over
  rounds; only ratios from the same run are compared.
It writes benchmarks/results/latest.json, latest.md and docs/benchmarks.png.
Needs torch, threadpoolctl and matplotlib (not needed by npylstm itself).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = (40, 450, 1, 100)                                                 # T, N, I, H

CASES = [
    # name, shape (T, N, I, H), options
    ("seed f32", SEED, {}),
    ("seed f64", SEED, {"dtype": "float64"}),
    ("T100 N64 I32 H256", (100, 64, 32, 256), {}),
    ("T50 N128 I256 H512", (50, 128, 256, 512), {}),
    ("N=1: T200 I8 H64", (200, 1, 8, 64), {}),
    ("2-layer bidir T40 N64 I32 H128", (40, 64, 32, 128), {"layers": 2, "bidirectional": True}),
    ("seed, lengths=all T", SEED, {"lengths": "full"}),
    ("seed, lengths=random", SEED, {"lengths": "random"}),
]
SCALE_T = [40, 200, 1000, 4000]                                          # N=32, I=1, H=100
SCALE_H = [64, 128, 256, 512, 1024]                                      # T=40, N=64, I=32


def worker(impl, case, threads):
    case = dict(case, threads=threads)
    proc = subprocess.run([sys.executable, str(HERE / "worker.py"), impl, json.dumps(case)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {case.get('name')}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alternate(case, rounds, threads, impls=("npylstm", "torch")):
    """Run each implementation `rounds` times, alternating which goes first."""
    runs = {impl: [] for impl in impls}
    for r in range(rounds):
        for impl in (impls if r % 2 == 0 else impls[::-1]):
            runs[impl].append(worker(impl, case, threads))
    return runs


def med(runs, key):
    vals = [r[key] for r in runs if key in r]
    return float(np.median(vals)) if vals else None


def lstm_flops(T, N, I, H, layers=1, D=1):
    """GEMM flops of one forward: x W_ih^T and h W_hh^T for 4H gates, every
    layer and direction. Forward + backward is 3x (dx, dh_prev, dW_ih, dW_hh)."""
    total, layer_in = 0, I
    for _ in range(layers):
        total += D * 2 * T * N * 4 * H * (layer_in + H)
        layer_in = D * H
    return total


def gemm_peak(shapes, dtype, threads):
    """GFLOP/s of numpy's matmul on these (M, K, N) shapes, in a fresh process."""
    code = f"""
import json, time, numpy as np
from threadpoolctl import threadpool_limits
threadpool_limits({threads}, user_api="blas")
out = []
for M, K, N in {shapes!r}:
    a = np.random.rand(M, K).astype("{dtype}"); b = np.random.rand(K, N).astype("{dtype}")
    c = np.empty((M, N), "{dtype}")
    for _ in range(3): np.matmul(a, b, out=c)
    ts = []
    t_end = time.perf_counter() + 0.3
    while len(ts) < 5 or time.perf_counter() < t_end:
        t0 = time.perf_counter(); np.matmul(a, b, out=c); ts.append(time.perf_counter() - t0)
    out.append(2 * M * K * N / float(np.median(ts)) / 1e9)
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def environment(threads):
    from threadpoolctl import threadpool_info
    import torch  # noqa: F401  (version only; measurements never import it here)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return dict(
        python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
        blas=[dict(library=b["internal_api"], version=b["version"], kernel=b.get("architecture"),
                   file=os.path.basename(b["filepath"])) for b in blas],
        torch_config=torch.__config__.parallel_info().splitlines()[:6],
        cpu=cpu, cpu_count=os.cpu_count(), threads=threads,
        openblas_env={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                      "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        load_average_start=os.getloadavg(),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round, few repeats, small scaling")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3; 1 with --quick)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    repeats = [2, 0.05, 3] if args.quick else [5, 0.4, 20]             # min, min seconds, max
    threads = args.threads
    started = time.time()
    env = environment(threads)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if env["openblas_env"][k] is not None:
            print(f"warning: {k} is set; it slows numpy's BLAS about 2x. Run with "
                  f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE", file=sys.stderr)
    results = dict(environment=env, rounds=rounds, cases=[], scaling_T=[], scaling_H=[])

    # The seed's training run: same initial weights, data and optimiser in both.
    with tempfile.TemporaryDirectory() as tmp:
        init = Path(tmp) / "init.npz"
        rng = np.random.default_rng(0)
        H, bound = 100, 1 / np.sqrt(100)
        state = {f"lstm.{n}": rng.uniform(-bound, bound, s).astype(np.float32) for n, s in [
            ("weight_ih_l0", (4 * H, 1)), ("weight_hh_l0", (4 * H, H)),
            ("bias_ih_l0", (4 * H,)), ("bias_hh_l0", (4 * H,))]}
        xavier = np.sqrt(6 / (H + 1))
        state["linear.weight"] = rng.uniform(-xavier, xavier, (1, H)).astype(np.float32)
        state["linear.bias"] = np.zeros(1, np.float32)
        np.savez(init, **state)
        epochs = 10 if args.quick else 80
        case = dict(kind="train", name=f"seed training, {epochs} epochs", dtype="float32",
                    init=str(init), seq_len=40, hidden=100, lr=1e-3, epochs=epochs)
        print(f"{case['name']} ...", flush=True)
        runs = alternate(case, rounds, threads)
        row = dict(name=case["name"], kind="train", dtype="float32",
                   npylstm=dict(train=med(runs["npylstm"], "train"),
                                final_loss=runs["npylstm"][-1]["final_loss"]),
                   torch=dict(train=med(runs["torch"], "train"),
                              final_loss=runs["torch"][-1]["final_loss"]))
        row["ratio_train"] = row["npylstm"]["train"] / row["torch"]["train"]
        results["cases"].append(row)

    for name, shape, opts in CASES:
        case = dict(dict(kind="lstm", name=name, shape=shape, dtype="float32",
                         modes=["fwd", "fb"], repeats=repeats), **opts)
        print(f"{name} ...", flush=True)
        runs = alternate(case, rounds, threads)
        T, N, I, H = shape
        L, D = opts.get("layers", 1), 2 if opts.get("bidirectional") else 1
        flops = lstm_flops(T, N, I, H, L, D)
        peak = gemm_peak([(N, H, 4 * H)], case["dtype"], threads)[0]      # the per-step GEMM
        row = dict(name=name, kind="lstm", shape=shape, dtype=case["dtype"], options=opts,
                   gemm_peak_gflops=peak, flops_fwd=flops,
                   cache=runs["npylstm"][-1]["cache"])
        for impl in ("npylstm", "torch"):
            row[impl] = {m: med(runs[impl], m) for m in ("fwd", "fb")}
            row[impl]["gflops_fwd"] = flops / row[impl]["fwd"] / 1e9
            row[impl]["gflops_fb"] = 3 * flops / row[impl]["fb"] / 1e9
        for m in ("fwd", "fb"):
            row[f"ratio_{m}"] = row["npylstm"][m] / row["torch"][m]
        results["cases"].append(row)

    # Scaling: time and memory as T grows and as H grows (both implementations, one round).
    for key, values, make in (("scaling_T", SCALE_T if not args.quick else SCALE_T[:2],
                               lambda v: (v, 32, 1, 100)),
                              ("scaling_H", SCALE_H if not args.quick else SCALE_H[:2],
                               lambda v: (40, 64, 32, v))):
        for v in values:
            shape = make(v)
            print(f"{key} {shape} ...", flush=True)
            case = dict(kind="lstm", name=f"{key} {v}", shape=shape, dtype="float32",
                        modes=["fb"], repeats=[3, 0.3, 10] if not args.quick else [2, 0.05, 3])
            runs = alternate(case, 1, threads)
            n, t = runs["npylstm"][0], runs["torch"][0]
            results[key].append(dict(value=v, shape=shape, npylstm_fb=n["fb"], torch_fb=t["fb"],
                                     ratio_fb=n["fb"] / t["fb"], cache=n["cache"],
                                     npylstm_peak_rss_over_start=n["peak_rss_over_start"],
                                     torch_peak_rss_over_start=t["peak_rss_over_start"]))

    env["load_average_end"] = os.getloadavg()
    results["seconds"] = time.time() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=1))
    md = markdown(results)
    (out / "latest.md").write_text(md)
    plot(results, ROOT / "docs" / "benchmarks.png")
    print(md)
    print(f"wrote {out / 'latest.json'}, {out / 'latest.md'}, docs/benchmarks.png "
          f"in {results['seconds']:.0f} s")


def ms(s):
    return f"{1e3 * s:.2f}"


def markdown(res):
    env = res["environment"]
    blas = ", ".join(f"{b['library']} {b['version']} (kernel {b['kernel']})" for b in env["blas"])
    lines = [
        f"Machine: {env['cpu']}, {env['cpu_count']} cores; {env['threads']} threads for both. "
        f"numpy {env['numpy']} with {blas}; torch {env['torch']}; Python {env['python']}.",
        f"OPENBLAS_CORETYPE={env['openblas_env']['OPENBLAS_CORETYPE']}, "
        f"OPENBLAS_L2_SIZE={env['openblas_env']['OPENBLAS_L2_SIZE']} (None = unset). "
        f"Load average at start {env['load_average_start'][0]:.2f}, at end "
        f"{env['load_average_end'][0]:.2f}. {res['rounds']} alternating rounds; medians.",
        "",
        "| case | dtype | npylstm fwd ms | torch fwd ms | fwd ratio | npylstm fwd+bwd ms "
        "| torch fwd+bwd ms | fwd+bwd ratio | npylstm fwd+bwd GFLOP/s (% of GEMM peak) "
        "| torch fwd+bwd GFLOP/s (%) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in res["cases"]:
        if row["kind"] == "train":
            n, t = row["npylstm"], row["torch"]
            lines.append(f"| {row['name']} (total s; final loss npylstm {n['final_loss']:.6g}, "
                         f"torch {t['final_loss']:.6g}) | float32 | | | | {n['train']:.3f} s "
                         f"| {t['train']:.3f} s | **{row['ratio_train']:.2f}** | | |")
            continue
        n, t, peak = row["npylstm"], row["torch"], row["gemm_peak_gflops"]
        lines.append(
            f"| {row['name']} | {row['dtype']} | {ms(n['fwd'])} | {ms(t['fwd'])} "
            f"| **{row['ratio_fwd']:.2f}** | {ms(n['fb'])} | {ms(t['fb'])} "
            f"| **{row['ratio_fb']:.2f}** | {n['gflops_fb']:.1f} ({100 * n['gflops_fb'] / peak:.0f}%) "
            f"| {t['gflops_fb']:.1f} ({100 * t['gflops_fb'] / peak:.0f}%) |")
    lines += ["", "GEMM peak: numpy matmul GFLOP/s on the per-step shape (N, H) x (H, 4H) "
              "with the same threads, measured in the same run.", "",
              "BPTT cache (npylstm, per forward and layer/direction), per (t, n): held = the "
              "inputs of the step's GEMM [h_prev, x_t, 1] (Hout + I + 1) + gates i, f, o, g (4H) "
              "+ c (H) + tanh(c) (H); minimum = what backward cannot do without: i, f, g, o, c "
              "(5H) and h_prev, x_t for the weight gradients (Hout + I). The output returned to "
              "the caller is a separate array, not read by backward. Workspaces (the caches "
              "and backward's buffers, e.g. grad_z, 4H per (t, n)) are reused across calls.", "",
              "| case | cache held MB | minimum MB | held / minimum | workspaces MB |",
              "|---|---|---|---|---|"]
    for row in res["cases"]:
        if row["kind"] == "lstm":
            c = row["cache"]
            lines.append(f"| {row['name']} | {c['held'] / 1e6:.1f} | {c['minimum'] / 1e6:.1f} "
                         f"| {c['ratio']:.2f} | {c['workspace'] / 1e6:.1f} |")
    for key, label in (("scaling_T", "T (N=32, I=1, H=100)"), ("scaling_H", "H (T=40, N=64, I=32)")):
        lines += ["", f"Scaling with {label}, float32, forward+backward, one round:", "",
                  f"| {key[-1]} | npylstm ms | torch ms | ratio | npylstm cache MB (x minimum) "
                  f"| npylstm peak RSS over start MB | torch peak RSS over start MB |",
                  "|---|---|---|---|---|---|---|"]
        for row in res[key]:
            c = row["cache"]
            lines.append(f"| {row['value']} | {ms(row['npylstm_fb'])} | {ms(row['torch_fb'])} "
                         f"| {row['ratio_fb']:.2f} | {c['held'] / 1e6:.1f} ({c['ratio']:.2f}) "
                         f"| {row['npylstm_peak_rss_over_start'] / 1e6:.0f} "
                         f"| {row['torch_peak_rss_over_start'] / 1e6:.0f} |")
    return "\n".join(lines) + "\n"


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in res["cases"] if r["kind"] == "lstm"]
    fig, (ax, ax_t, ax_h) = plt.subplots(1, 3, figsize=(16, 5),
                                         gridspec_kw=dict(width_ratios=[2.2, 1, 1]))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r["ratio_fwd"] for r in rows], 0.4, label="forward (eval / no_grad)")
    ax.barh(y + 0.2, [r["ratio_fb"] for r in rows], 0.4, label="forward + backward")
    train = [r for r in res["cases"] if r["kind"] == "train"][0]
    ax.barh([-1], [train["ratio_train"]], 0.4, color="C2", label="seed training run")
    ax.set_yticks(list(y) + [-1], [f"{r['name']} {r['dtype']}" for r in rows] + [train["name"]])
    ax.axvline(1, color="k", lw=1)
    ax.invert_yaxis()
    ax.set_xlabel("time npylstm / time torch (lower is faster)")
    ax.legend(loc="lower right", fontsize=8)
    for a, key, label in ((ax_t, "scaling_T", "T (N=32, H=100)"), (ax_h, "scaling_H", "H (T=40, N=64)")):
        v = [r["value"] for r in res[key]]
        a.loglog(v, [1e3 * r["npylstm_fb"] for r in res[key]], "o-", label="npylstm fwd+bwd")
        a.loglog(v, [1e3 * r["torch_fb"] for r in res[key]], "s--", label="torch fwd+bwd")
        a.set_xlabel(label)
        a.set_ylabel("ms")
        a.legend(fontsize=8)
    fig.suptitle(f"npylstm vs torch {res['environment']['torch']}, {res['environment']['threads']} "
                 f"threads, {res['environment']['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
