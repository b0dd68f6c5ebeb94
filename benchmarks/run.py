"""npylstm against torch.nn.LSTM on the CPU, side by side, at 1 and at 2 threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py --only charlm

--only charlm runs the character model's cases alone (a couple of minutes):
its training step and its sampling (charlm_cases); they are part of a full run
too, and have their own section in docs/benchmarks.md (the CHARLM markers).

Rules, so that the ratios mean something on a small, noisy machine:
- both use the same number of threads, 1 and then 2 in the same run
  (--threads to change): torch through torch.set_num_threads, numpy's BLAS
  through threadpoolctl;
- every measurement runs in a fresh process that imports one implementation
  only (benchmarks/worker.py), and the two implementations alternate,
  A B then B A, for --rounds rounds; so do the thread counts;
- forward is timed under npylstm.no_grad() against torch.no_grad();
- every process also measures its library's GEMM peak at its thread count
  (the best of a few 2048 x 2048 products, worker.gemm_peak), and npylstm's
  processes time the same GEMMs as the case without the elementwise work
  (worker.gemm_sequences): the tables give npylstm's GFLOP/s as a fraction of
  that peak and the GEMM share of its time, figures that do not depend on
  torch's build;
- every process also times a small fixed GEMM (the phase probe, worker.PROBE)
  with its own library and threads; its GFLOP/s is printed per round next to
  the ratios, so a slow phase of the machine (2 threads no faster than 1)
  shows; it is a flag, not a peak;
- the CPU (vendor and model, /proc/cpuinfo) and numpy's BLAS kernel
  (threadpoolctl) are recorded with every run: the ratios hold for that CPU;
- a time is the median over repeats inside a process, then the median over
  rounds; only ratios from the same run are compared.
It writes benchmarks/results/latest.json, latest.md and docs/benchmarks.png;
latest.md holds every table of docs/benchmarks.md's "Latest run", and
--update-docs also copies it there (between the two LATEST markers).
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

# The character model of issue 16: the default shape of `python -m npylstm.charlm train`
# (npylstm/charlm/train.py: CharLMConfig), float32, with random ids over V = 97 characters.
CHARLM = dict(vocab=97, hidden=256, layers=1, embed=64, seq_len=64, batch=64, lr=4e-3, clip=5.0)
SAMPLE_LENGTH = 500                                                      # characters per sample() call

# Issue 11's targets: (what, which rows, mode, limit at 1 thread, limit at 2 threads), float32.
TARGETS = [
    ("forward under no_grad, seed shape", ["seed f32"], "fwd", 1.2, 1.5),
    ("forward under no_grad, every other shape except N=1",
     ["T100 N64 I32 H256", "T50 N128 I256 H512", "2-layer bidir T40 N64 I32 H128",
      "seed, lengths=all T", "seed, lengths=random"], "fwd", 1.5, 2.0),
    ("seed training and seed f+b", ["seed training", "seed f32"], "train/fb", 0.85, 1.0),
    ("every other f+b except N=1",
     ["T100 N64 I32 H256", "T50 N128 I256 H512", "2-layer bidir T40 N64 I32 H128",
      "seed, lengths=all T", "seed, lengths=random"], "fb", 1.0, 1.2),
    ("N=1, forward and f+b", ["N=1: T200 I8 H64"], "fwd/fb", 4.0, 4.0),
]


def worker(impl, case, threads):
    case = dict(case, threads=threads)
    proc = subprocess.run([sys.executable, str(HERE / "worker.py"), impl, json.dumps(case)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {case.get('name')}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alternate(case, rounds, thread_counts, modes, impls=("npylstm", "torch")):
    """Run both implementations at every thread count `rounds` times, alternating
    which goes first (and which thread count goes first); print each round's
    ratios with the probe GFLOP/s of both processes.

    Returns {threads: {impl: [worker result, one per round]}}.
    """
    runs = {th: {impl: [] for impl in impls} for th in thread_counts}
    for r in range(rounds):
        for th in (thread_counts if r % 2 == 0 else thread_counts[::-1]):
            for impl in (impls if r % 2 == 0 else impls[::-1]):
                runs[th][impl].append(worker(impl, case, th))
            n, t = runs[th]["npylstm"][-1], runs[th]["torch"][-1]
            ratios = "  ".join(f"{m} {n[m] / t[m]:.2f}" for m in modes)
            print(f"  round {r + 1}, {th} thread{'s' if th > 1 else ''}: {ratios}   probe GFLOP/s "
                  f"numpy {np.mean(n['probe']):.0f}, torch {np.mean(t['probe']):.0f}", flush=True)
    return runs


def med(runs, key):
    vals = [r[key] for r in runs if key in r]
    return float(np.median(vals)) if vals else None


def summarize(runs, modes):
    """Medians, ratios and the per-round record of one case at one thread count."""
    out = {impl: {m: med(rs, m) for m in modes} for impl, rs in runs.items()}
    for m in modes:
        out[f"ratio_{m}"] = out["npylstm"][m] / out["torch"][m]
    for impl, rs in runs.items():
        for dtype in rs[0].get("peak", {}):
            out[impl][f"peak_{dtype}"] = float(np.median([r["peak"][dtype] for r in rs]))
        for m in modes:
            if f"gemm_{m}" in rs[0]:
                out[impl][f"gemm_{m}"] = med(rs, f"gemm_{m}")
    out["rounds"] = [dict({f"ratio_{m}": n[m] / t[m] for m in modes},
                          probe_numpy=float(np.mean(n["probe"])),
                          probe_torch=float(np.mean(t["probe"])))
                     for n, t in zip(runs["npylstm"], runs["torch"])]
    return out


def case_flops(shape, opts):
    """Useful floating-point operations of one forward of the case, and of forward + backward.

    Counted as the matrix products of the equations, not of npylstm's code:
    per layer and direction, a step over n running sequences multiplies
    [W_ih | W_hh] (4H, I_l + H) by [x_t, h_prev] for 2 * 4H * (I_l + H) * n
    flops (I_l = I in layer 0, D * H above it); over a sequence that is
    2 * 4H * (I_l + H) * S, S = the sum of the lengths (T * N without
    lengths). Backward makes two products of the same size per step, dz
    against the weights (dh_prev and dx) and dz against the inputs (dW), so
    forward + backward is 3x forward. Not counted: the biases (npylstm's bias
    column of ones, 2 * 4H * S), the elementwise work (about 20 H * S per
    step), and the products npylstm makes over padding (with lengths, its
    dW and dx products run over all T * N columns, zeros included).
    """
    T, N, I, H = shape
    L, D = opts.get("layers", 1), 2 if opts.get("bidirectional") else 1
    if opts.get("lengths") == "random":
        S = int(np.sum(np.random.default_rng(2).integers(1, T + 1, N)))   # as worker.lengths_of
    else:
        S = T * N
    fwd, layer_in = 0, I
    for _ in range(L):
        fwd += D * 2 * 4 * H * (layer_in + H) * S
        layer_in = D * H
    return fwd, 3 * fwd


def cpu_info():
    """The CPU's model name, vendor, family/model and SIMD flags from /proc/cpuinfo (Linux)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, value = (part.strip() for part in line.split(":", 1))
                    fields.setdefault(key, value)
    except OSError:
        pass
    flags = fields.get("flags", "").split()
    return dict(model=fields.get("model name", platform.processor() or "unknown"),
                vendor=fields.get("vendor_id", "unknown"),
                family_model=f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}",
                flags=[f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags])


def environment(thread_counts):
    from threadpoolctl import threadpool_info
    import torch  # noqa: F401  (version only; measurements never import it here)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    cpu = cpu_info()
    return dict(
        python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
        blas=[dict(library=b["internal_api"], version=b["version"], kernel=b.get("architecture"),
                   file=os.path.basename(b["filepath"])) for b in blas],
        torch_config=torch.__config__.parallel_info().splitlines()[:6],
        cpu=cpu["model"], cpu_vendor=cpu["vendor"], cpu_family_model=cpu["family_model"],
        cpu_flags=cpu["flags"], cpu_count=os.cpu_count(), threads=list(thread_counts),
        openblas_env={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                      "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        load_average_start=os.getloadavg(),
    )


def seed_init(path):
    """The seed model's initial weights (torch's LSTM default, Xavier linear), for both."""
    rng = np.random.default_rng(0)
    H, bound = 100, 1 / np.sqrt(100)
    state = {f"lstm.{n}": rng.uniform(-bound, bound, s).astype(np.float32) for n, s in [
        ("weight_ih_l0", (4 * H, 1)), ("weight_hh_l0", (4 * H, H)),
        ("bias_ih_l0", (4 * H,)), ("bias_hh_l0", (4 * H,))]}
    xavier = np.sqrt(6 / (H + 1))
    state["linear.weight"] = rng.uniform(-xavier, xavier, (1, H)).astype(np.float32)
    state["linear.bias"] = np.zeros(1, np.float32)
    np.savez(path, **state)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round, few repeats, small scaling")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3; 1 with --quick)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts to measure (default: 1 2)")
    ap.add_argument("--scaling-threads", type=int, default=2,
                    help="thread count of the scaling runs (default 2; 0 skips them)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--update-docs", action="store_true",
                    help="also put latest.md into docs/benchmarks.md, between its LATEST markers "
                         "(with --only charlm: the character model's table, between the CHARLM markers)")
    ap.add_argument("--only", choices=["charlm"], default=None,
                    help="run only these cases: charlm = the character model's training step "
                         "and sampling (a couple of minutes)")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    repeats = [2, 0.05, 3] if args.quick else [5, 0.3, 20]             # min, min seconds, max
    thread_counts = sorted(set(args.threads))
    started = time.time()
    env = environment(thread_counts)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if env["openblas_env"][k] is not None:
            print(f"warning: {k} is set; it slows numpy's BLAS about 2x. Run with "
                  f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE", file=sys.stderr)
    results = dict(environment=env, rounds=rounds, cases=[], scaling_T=[], scaling_H=[], charlm=[])
    if args.only == "charlm":
        results["charlm"] = charlm_cases(rounds, thread_counts, args.quick)
        env["load_average_end"] = os.getloadavg()
        results["seconds"] = time.time() - started
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "latest_charlm.json").write_text(json.dumps(results, indent=1))
        md = charlm_markdown(results, header=True)
        (out / "latest_charlm.md").write_text(md)
        if args.update_docs:
            update_docs(ROOT / "docs" / "benchmarks.md", md, CHARLM_BEGIN, CHARLM_END)
        print(md)
        print(f"wrote {out / 'latest_charlm.json'}, {out / 'latest_charlm.md'} "
              f"in {results['seconds']:.0f} s")
        return

    # The seed's training run: same initial weights, data and optimiser in both.
    with tempfile.TemporaryDirectory() as tmp:
        init = Path(tmp) / "init.npz"
        seed_init(init)
        epochs = 10 if args.quick else 80
        case = dict(kind="train", name=f"seed training, {epochs} epochs", dtype="float32",
                    init=str(init), seq_len=40, hidden=100, lr=1e-3, epochs=epochs,
                    peak_repeats=1 if args.quick else 4)
        print(f"{case['name']} ...", flush=True)
        runs = alternate(case, rounds, thread_counts, ["train"])
        row = dict(name=case["name"], kind="train", dtype="float32", threads={})
        for th in thread_counts:
            row["threads"][str(th)] = s = summarize(runs[th], ["train"])
            for impl in ("npylstm", "torch"):
                s[impl]["final_loss"] = runs[th][impl][-1]["final_loss"]
        results["cases"].append(row)

    for name, shape, opts in CASES:
        case = dict(dict(kind="lstm", name=name, shape=shape, dtype="float32",
                         modes=["fwd", "fb"], repeats=repeats, memory=True,
                         peak_repeats=1 if args.quick else 4), **opts)
        print(f"{name} ...", flush=True)
        runs = alternate(case, rounds, thread_counts, ["fwd", "fb"])
        flops = dict(zip(("fwd", "fb"), case_flops(shape, opts)))
        last = runs[thread_counts[-1]]["npylstm"][-1]
        row = dict(name=name, kind="lstm", shape=shape, dtype=case["dtype"], options=opts,
                   flops_fwd=flops["fwd"], flops_fb=flops["fb"], cache=last["cache"],
                   memory=last.get("memory"), blas=last.get("blas"), threads={})
        for th in thread_counts:
            row["threads"][str(th)] = s = summarize(runs[th], ["fwd", "fb"])
            for impl in ("npylstm", "torch"):
                e = s[impl]
                peak = e.get(f"peak_{case['dtype']}")
                for m in ("fwd", "fb"):
                    e[f"gflops_{m}"] = flops[m] / e[m] / 1e9
                    e[f"fraction_of_peak_{m}"] = e[f"gflops_{m}"] / peak if peak else None
                    if f"gemm_{m}" in e:
                        e[f"gemm_share_{m}"] = e[f"gemm_{m}"] / e[m]
        results["cases"].append(row)

    # Scaling: time and memory as T grows and as H grows (both implementations, one round).
    th = args.scaling_threads
    for key, values, make in (("scaling_T", SCALE_T if not args.quick else SCALE_T[:2],
                               lambda v: (v, 32, 1, 100)),
                              ("scaling_H", SCALE_H if not args.quick else SCALE_H[:2],
                               lambda v: (40, 64, 32, v))):
        for v in values if th else []:
            shape = make(v)
            print(f"{key} {shape} ...", flush=True)
            case = dict(kind="lstm", name=f"{key} {v}", shape=shape, dtype="float32",
                        modes=["fb"], peak_repeats=0, gemms=False, repeats=[3, 0.2, 10] if not args.quick else [2, 0.05, 3])
            runs = alternate(case, 1, [th], ["fb"])[th]
            n, t = runs["npylstm"][0], runs["torch"][0]
            results[key].append(dict(value=v, shape=shape, threads=th, npylstm_fb=n["fb"],
                                     torch_fb=t["fb"], ratio_fb=n["fb"] / t["fb"], cache=n["cache"],
                                     npylstm_peak_rss_over_start=n["peak_rss_over_start"],
                                     torch_peak_rss_over_start=t["peak_rss_over_start"]))

    results["charlm"] = charlm_cases(rounds, thread_counts, args.quick)

    env["load_average_end"] = os.getloadavg()
    results["seconds"] = time.time() - started
    results["targets"] = check_targets(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=1))
    md = markdown(results)
    (out / "latest.md").write_text(md)
    plot(results, ROOT / "docs" / "benchmarks.png")
    if args.update_docs:
        update_docs(ROOT / "docs" / "benchmarks.md", md)
        update_docs(ROOT / "docs" / "benchmarks.md", charlm_markdown(results, header=True),
                    CHARLM_BEGIN, CHARLM_END)
    print(md)
    print(f"wrote {out / 'latest.json'}, {out / 'latest.md'}, docs/benchmarks.png "
          f"in {results['seconds']:.0f} s")


BEGIN, END = "<!-- LATEST: written by benchmarks/run.py --update-docs -->", "<!-- END LATEST -->"
CHARLM_BEGIN = "<!-- CHARLM: written by benchmarks/run.py [--only charlm] --update-docs -->"
CHARLM_END = "<!-- END CHARLM -->"


def update_docs(path, md, begin=BEGIN, end=END):
    """Replace the text between the markers ``begin`` and ``end`` of docs/benchmarks.md with ``md``."""
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path} has no {begin} ... {end} markers; paste the table by hand")
    head, rest = text.split(begin, 1)
    path.write_text(head + begin + "\n" + md + rest[rest.index(end):])


def charlm_cases(rounds, thread_counts, quick):
    """The character model's training step at every thread count, and its sampling
    (N = 1) at 1 thread, both implementations alternating as for the other cases.

    Returns [row, row]: {"name", "kind", "chars", "threads": {th: summary}}, where
    summary has each implementation's median seconds and characters per second
    and the ratio npylstm / torch of the times.
    """
    rows = []
    step = dict(CHARLM, kind="charlm_step", dtype="float32", peak_repeats=0,
                repeats=[3, 0.3, 5] if quick else [5, 2.0, 30])
    step["name"] = (f"training step: CharLM V{CHARLM['vocab']} E{CHARLM['embed']} "
                    f"H{CHARLM['hidden']} L{CHARLM['layers']}, T{CHARLM['seq_len']} B{CHARLM['batch']}")
    sample = dict(CHARLM, kind="charlm_sample", dtype="float32", peak_repeats=0, length=SAMPLE_LENGTH,
                  repeats=[3, 0.3, 5] if quick else [5, 2.0, 20])
    sample["name"] = f"sampling, N = 1: {SAMPLE_LENGTH} characters, same model (random weights)"
    for case, mode, threads, chars in ((step, "step", thread_counts, CHARLM["seq_len"] * CHARLM["batch"]),
                                       (sample, "sample", [1], SAMPLE_LENGTH)):
        print(f"{case['name']} ...", flush=True)
        runs = alternate(case, rounds, threads, [mode])
        row = dict(name=case["name"], kind=case["kind"], chars=chars, threads={})
        for th in threads:
            row["threads"][str(th)] = s = summarize(runs[th], [mode])
            for impl in ("npylstm", "torch"):
                s[impl]["chars_per_s"] = chars / s[impl][mode]
        rows.append(row)
    return rows


def charlm_markdown(res, header=False):
    """The character model's table: characters per second and the time ratio."""
    lines = markdown_header(res) + [""] if header else []
    lines += ["Character model (issue 16), float32: the default shape of `python -m npylstm.charlm "
              "train` (V = 97 random ids, embedding 64, 1 layer of 256, T = 64, B = 64). Training "
              "step: npylstm.charlm.train_step (forward, CrossEntropyLoss, backward, "
              "clip_grad_norm_(5), Adam) against nn.Embedding, nn.LSTM, nn.Linear, F.cross_entropy, "
              "clip_grad_norm_ and torch.optim.Adam, the state carried and detached; characters = "
              "T * B per step. Sampling: npylstm.charlm.sampling.sample against a loop of one-step "
              "nn.LSTM calls with the state carried, softmax and torch.multinomial, both from "
              "random weights (the time does not depend on them). Ratio = npylstm time / torch "
              "time (below 1: npylstm is faster); median over rounds, per round after it, with "
              "the phase probe GFLOP/s numpy-torch of each round (a 2-thread probe near or below "
              "the 1-thread one: a slow phase of the machine).", "",
              "| case | threads | npylstm chars/s | torch chars/s | ratio | per round | phase probe per round |",
              "|---|---|---|---|---|---|---|"]
    for row in res.get("charlm", []):
        mode = "step" if row["kind"] == "charlm_step" else "sample"
        for th, s in row["threads"].items():
            per = " / ".join(f"{r[f'ratio_{mode}']:.2f}" for r in s["rounds"])
            probe = " / ".join(f"{r['probe_numpy']:.0f}-{r['probe_torch']:.0f}" for r in s["rounds"])
            lines.append(f"| {row['name']} | {th} | {s['npylstm']['chars_per_s']:,.0f} "
                         f"| {s['torch']['chars_per_s']:,.0f} | **{s[f'ratio_{mode}']:.2f}** | {per} "
                         f"| {probe} |")
    return "\n".join(lines) + "\n"


def check_targets(res):
    """Issue 11's targets against this run: one entry per target and thread count."""
    rows = {r["name"].split(",")[0] if r["kind"] == "train" else r["name"]: r for r in res["cases"]}
    found = []
    for what, names, mode, *limits in TARGETS:
        for th, limit in zip(("1", "2"), limits):
            values = []
            for name in names:
                row = rows.get(name)
                if row is None or th not in row["threads"]:
                    continue
                s = row["threads"][th]
                for m in mode.split("/"):
                    if f"ratio_{m}" in s:
                        values.append((name, m, s[f"ratio_{m}"]))
            if values:
                found.append(dict(target=what, threads=int(th), limit=limit, values=values,
                                  met=all(v <= limit for _, _, v in values)))
    return found


def ms(s):
    return f"{1e3 * s:.2f}"


def mb(b):
    return f"{b / 1e6:.1f}"


def markdown_header(res):
    """The CPU, libraries, environment variables and load of a run."""
    env = res["environment"]
    blas = ", ".join(f"{b['library']} {b['version']} (kernel {b['kernel']})" for b in env["blas"])
    return [
        f"CPU: {env['cpu']} (vendor {env.get('cpu_vendor', '?')}, "
        f"{env.get('cpu_family_model', '?')}; {', '.join(env.get('cpu_flags', [])) or 'no AVX flags read'}), "
        f"{env['cpu_count']} cores. numpy {env['numpy']} with {blas}; "
        f"torch {env['torch']}; Python {env['python']}.",
        f"OPENBLAS_CORETYPE={env['openblas_env']['OPENBLAS_CORETYPE']}, "
        f"OPENBLAS_L2_SIZE={env['openblas_env']['OPENBLAS_L2_SIZE']} (None = unset). "
        f"Load average at start {env['load_average_start'][0]:.2f}, at end "
        f"{env['load_average_end'][0]:.2f}. {res['rounds']} alternating rounds; medians; "
        f"{res['seconds'] / 60:.1f} minutes in all. Forward: npylstm.no_grad() against "
        f"torch.no_grad().",
    ]


def markdown(res):
    env = res["environment"]
    threads = [str(t) for t in env["threads"]]
    lines = markdown_header(res)
    # The probe: what one small GEMM ran at, per thread count, over every process of the run.
    lines += ["", "Phase probe (a flag for slow phases, not a peak): GFLOP/s of a fixed float32 GEMM "
              "(128x256 by 256x512) timed in every process, median over the run (min-max). At 2 "
              "threads it should be about twice the 1-thread figure; a round whose probe is near "
              "the 1-thread figure ran in a slow phase.",
              "", "| threads | numpy (npylstm's processes) | torch (torch's processes) |", "|---|---|---|"]
    for th in threads:
        probes = {k: [r[k] for c in res["cases"] if th in c["threads"] for r in c["threads"][th]["rounds"]]
                  for k in ("probe_numpy", "probe_torch")}
        lines.append(f"| {th} | " + " | ".join(
            f"{np.median(v):.0f} ({min(v):.0f}-{max(v):.0f})" for v in probes.values()) + " |")
    for th in threads:
        lines += ["", f"**{th} thread{'s' if th != '1' else ''}** (ratio = npylstm / torch; "
                  f"per round: the ratio of each round, then the phase probe GFLOP/s numpy-torch "
                  f"of each round)", "",
                  "| case | npylstm fwd ms | torch fwd ms | fwd ratio | per round | npylstm f+b ms "
                  "| torch f+b ms | f+b ratio | per round | phase probe per round |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in res["cases"]:
            s = row["threads"].get(th)
            if s is None:
                continue
            per = lambda m: " / ".join(f"{r[f'ratio_{m}']:.2f}" for r in s["rounds"])
            probe = " / ".join(f"{r['probe_numpy']:.0f}-{r['probe_torch']:.0f}" for r in s["rounds"])
            if row["kind"] == "train":
                n, t = s["npylstm"], s["torch"]
                lines.append(f"| {row['name']} (total; final loss npylstm {n['final_loss']:.6g}, "
                             f"torch {t['final_loss']:.6g}) | | | | | {n['train']:.3f} s "
                             f"| {t['train']:.3f} s | **{s['ratio_train']:.2f}** | {per('train')} "
                             f"| {probe} |")
                continue
            n, t = s["npylstm"], s["torch"]
            lines.append(
                f"| {row['name']} | {ms(n['fwd'])} | {ms(t['fwd'])} | **{s['ratio_fwd']:.2f}** "
                f"| {per('fwd')} | {ms(n['fb'])} | {ms(t['fb'])} | **{s['ratio_fb']:.2f}** "
                f"| {per('fb')} | {probe} |")
    lines += efficiency_tables(res, threads)
    if res.get("charlm"):
        lines += ["", charlm_markdown(res).rstrip("\n")]
    lines += ["", "Targets of issue 11 (float32, median ratios of this run):", "",
              "| target | threads | limit | this run | |", "|---|---|---|---|---|"]
    for t in res["targets"]:
        vals = ", ".join(f"{name} {m} {v:.2f}" for name, m, v in t["values"])
        lines.append(f"| {t['target']} | {t['threads']} | ≤ {t['limit']} | {vals} "
                     f"| {'met' if t['met'] else '**missed**'} |")
    lines += ["", "Memory of one forward (npylstm, float32, a fresh LSTM; tracemalloc peak of "
              "everything numpy allocates during the call, the returned output included):", "",
              "| case | cached forward MB | under no_grad MB | output MB | no_grad minus output MB |",
              "|---|---|---|---|---|"]
    for row in res["cases"]:
        m = row.get("memory")
        if m:
            lines.append(f"| {row['name']} | {mb(m['cached'])} | {mb(m['no_grad'])} | {mb(m['output'])} "
                         f"| {mb(m['no_grad'] - m['output'])} |")
    lines += ["", "BPTT cache (npylstm, per forward and layer/direction), per (t, n): held = the "
              "inputs of the step's GEMM [h_prev, x_t, 1] (Hout + I + 1) + gates i, f, o, g (4H) "
              "+ c (H) + tanh(c) (H); minimum = what backward cannot do without: i, f, g, o, c "
              "(5H) and h_prev, x_t for the weight gradients (Hout + I). Workspaces (the caches "
              "and backward's buffers, e.g. grad_z, 4H per (t, n)) are reused across calls.", "",
              "| case | cache held MB | minimum MB | held / minimum | workspaces MB |",
              "|---|---|---|---|---|"]
    for row in res["cases"]:
        if row["kind"] == "lstm":
            c = row["cache"]
            lines.append(f"| {row['name']} | {mb(c['held'])} | {mb(c['minimum'])} "
                         f"| {c['ratio']:.2f} | {mb(c['workspace'])} |")
    for key, label in (("scaling_T", "T (N=32, I=1, H=100)"), ("scaling_H", "H (T=40, N=64, I=32)")):
        if not res[key]:
            continue
        lines += ["", f"Scaling with {label}, float32, forward+backward, one round, "
                  f"{res[key][0]['threads']} threads:", "",
                  f"| {key[-1]} | npylstm ms | torch ms | ratio | npylstm cache MB (x minimum) "
                  f"| npylstm peak RSS over start MB | torch peak RSS over start MB |",
                  "|---|---|---|---|---|---|---|"]
        for row in res[key]:
            c = row["cache"]
            lines.append(f"| {row['value']} | {ms(row['npylstm_fb'])} | {ms(row['torch_fb'])} "
                         f"| {row['ratio_fb']:.2f} | {mb(c['held'])} ({c['ratio']:.2f}) "
                         f"| {row['npylstm_peak_rss_over_start'] / 1e6:.0f} "
                         f"| {row['torch_peak_rss_over_start'] / 1e6:.0f} |")
    return "\n".join(lines) + "\n"


def pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def efficiency_tables(res, threads):
    """Per thread count: GFLOP/s against each process's own GEMM peak, and the GEMM share."""
    lines = ["", "Efficiency, a figure that does not depend on torch's build. FLOPs: the matrix "
             "products of the equations, 2 * 4H * (I_l + H) per step, sequence, layer and "
             "direction (I_l = I in layer 0, D * H above; with lengths only the running "
             "sequences count); forward + backward = 3x forward (benchmarks/run.py: case_flops). "
             "Peak: the best of 4 square 2048 x 2048 GEMMs of the case's dtype in the same "
             "process, at the same thread count, after the case (median over rounds). GEMMs "
             "alone: the same matrix products as npylstm's layer makes for the case, with its "
             "layouts, timed without the elementwise work (benchmarks/worker.py: gemm_sequences); "
             "share = GEMMs alone / the case's time. A share near 100% means the gap to the peak "
             "is the GEMM library at these shapes; a low share means per-step overhead."]
    for th in threads:
        lines += ["", f"Efficiency at {th} thread{'s' if th != '1' else ''}:", "",
                  "| case | GFLOP fwd | numpy peak GFLOP/s | npylstm fwd GFLOP/s (% of peak) "
                  "| npylstm f+b GFLOP/s (% of peak) | GEMMs alone fwd ms (share) "
                  "| GEMMs alone f+b ms (share) | torch peak GFLOP/s | torch f+b GFLOP/s (% of its peak) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in res["cases"]:
            s = row["threads"].get(th)
            if s is None or row["kind"] != "lstm":
                continue
            n, t, dt = s["npylstm"], s["torch"], row["dtype"]
            gemm = lambda m: (f"{ms(n['gemm_' + m])} ({pct(n.get('gemm_share_' + m))})"
                              if n.get("gemm_" + m) is not None else "-")
            lines.append(
                f"| {row['name']} | {row['flops_fwd'] / 1e9:.2f} | {n.get('peak_' + dt, 0):.0f} "
                f"| {n['gflops_fwd']:.0f} ({pct(n['fraction_of_peak_fwd'])}) "
                f"| {n['gflops_fb']:.0f} ({pct(n['fraction_of_peak_fb'])}) | {gemm('fwd')} "
                f"| {gemm('fb')} | {t.get('peak_' + dt, 0):.0f} "
                f"| {t['gflops_fb']:.0f} ({pct(t['fraction_of_peak_fb'])}) |")
    return lines


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    threads = [str(t) for t in res["environment"]["threads"]]
    rows = [r for r in res["cases"] if r["kind"] == "lstm"]
    train = [r for r in res["cases"] if r["kind"] == "train"][0]
    fig, axes = plt.subplots(1, len(threads) + 2, figsize=(7 * len(threads) + 8, 5),
                             gridspec_kw=dict(width_ratios=[2.2] * len(threads) + [1, 1]))
    y = np.arange(len(rows))
    for ax, th in zip(axes, threads):
        ax.barh(y - 0.2, [r["threads"][th]["ratio_fwd"] for r in rows], 0.4,
                label="forward (no_grad)")
        ax.barh(y + 0.2, [r["threads"][th]["ratio_fb"] for r in rows], 0.4, label="forward + backward")
        ax.barh([-1], [train["threads"][th]["ratio_train"]], 0.4, color="C2", label="seed training run")
        ax.set_yticks(list(y) + [-1], [f"{r['name']} {r['dtype']}" for r in rows] + [train["name"]]
                      if th == threads[0] else [""] * (len(rows) + 1))
        ax.axvline(1, color="k", lw=1)
        ax.invert_yaxis()
        ax.set_title(f"{th} thread{'s' if th != '1' else ''}")
        ax.set_xlabel("time npylstm / time torch (lower is faster)")
        ax.legend(loc="lower right", fontsize=8)
    for a, key, label in ((axes[-2], "scaling_T", "T (N=32, H=100)"),
                          (axes[-1], "scaling_H", "H (T=40, N=64)")):
        v = [r["value"] for r in res[key]]
        a.loglog(v, [1e3 * r["npylstm_fb"] for r in res[key]], "o-", label="npylstm fwd+bwd")
        a.loglog(v, [1e3 * r["torch_fb"] for r in res[key]], "s--", label="torch fwd+bwd")
        a.set_xlabel(label)
        a.set_ylabel("ms")
        a.legend(fontsize=8)
    fig.suptitle(f"npylstm vs torch {res['environment']['torch']}, {res['environment']['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
