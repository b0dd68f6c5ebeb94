"""Where the time of one character-model training step goes.

    python benchmarks/charlm_share.py [--layers 2] [--hidden 256] [--embed 64] [--seq 64]
                                      [--batch 64] [--vocab 98] [--threads 1] [--torch]

Times, in float32, each part of npylstm.charlm.train_step separately (the
embedding, the LSTM, the output Linear and the softmax cross-entropy, each
forward + backward; then clipping and Adam) and the whole step, as the median
of several repeats, and prints each part's share of the step. With --torch,
also the same step of the same model in torch at the same thread count.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import npylstm
from npylstm.charlm import CharLM, train_step


def median_ms(fn, repeats):
    fn()                                                       # warm up: workspaces, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def parts(args):
    rng = np.random.default_rng(0)
    V, T, B = args.vocab, args.seq, args.batch
    model = CharLM(V, args.hidden, args.layers, args.embed, rng=0)
    opt = npylstm.Adam(model.parameters(), lr=2e-3)
    crit = npylstm.CrossEntropyLoss()
    ids = rng.integers(0, V, (T, B))
    targets = rng.integers(0, V, (T * B,))
    x = model.embedding(ids)
    out, _ = model.lstm(x)
    hidden = out.reshape(T * B, -1)
    logits = model.linear(hidden)
    g_out = rng.standard_normal(out.shape).astype(np.float32)
    g_logits = rng.standard_normal(logits.shape).astype(np.float32)
    g_x = rng.standard_normal(x.shape).astype(np.float32)

    def emb():
        model.embedding(ids)
        model.embedding.backward(g_x)

    def lstm():
        model.lstm(x)
        model.lstm.backward(g_out)

    def linear():
        model.linear(hidden)
        model.linear.backward(g_logits)

    def ce():
        crit(logits, targets)
        crit.backward()

    def clip_adam():
        npylstm.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        opt.zero_grad()

    def step():
        train_step(model, opt, crit, ids, targets.reshape(T, B), None, 5.0)

    r = args.repeats
    return {"embedding": median_ms(emb, r), "lstm": median_ms(lstm, r), "linear": median_ms(linear, r),
            "softmax+CE": median_ms(ce, r), "clip+adam": median_ms(clip_adam, r),
            "train_step": median_ms(step, r)}


def torch_step_ms(args):
    import torch
    torch.set_num_threads(args.threads)
    V, T, B = args.vocab, args.seq, args.batch

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, args.embed)
            self.lstm = torch.nn.LSTM(args.embed, args.hidden, args.layers)
            self.linear = torch.nn.Linear(args.hidden, V)

        def forward(self, ids, hx=None):
            out, hx = self.lstm(self.embedding(ids), hx)
            return self.linear(out), hx

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    crit = torch.nn.CrossEntropyLoss()
    ids = torch.randint(0, V, (T, B))
    targets = torch.randint(0, V, (T * B,))

    def step():
        logits, _ = model(ids)
        loss = crit(logits.reshape(-1, V), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        opt.zero_grad()

    return median_ms(step, args.repeats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in [("layers", 2), ("hidden", 256), ("embed", 64), ("seq", 64), ("batch", 64),
                          ("vocab", 98), ("threads", 1), ("repeats", 7)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--torch", action="store_true", help="also time torch's step")
    args = p.parse_args(argv)
    with threadpool_limits(args.threads):
        times = parts(args)
    step = times["train_step"]
    print(f"{args.layers} x {args.hidden}, E={args.embed}, T={args.seq}, B={args.batch}, V={args.vocab}, "
          f"float32, {args.threads} thread(s); median of {args.repeats}, ms per call")
    for name, ms in times.items():
        print(f"  {name:12s} {ms:8.2f} ms  {100 * ms / step:5.1f} % of the step")
    print(f"  embedding + softmax/CE = {100 * (times['embedding'] + times['softmax+CE']) / times['lstm']:.1f} % "
          f"of the LSTM's time")
    if args.torch:
        ms = torch_step_ms(args)
        print(f"  torch step   {ms:8.2f} ms; npylstm / torch = {step / ms:.2f}")


if __name__ == "__main__":
    main()
