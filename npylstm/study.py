"""Which parts of the LSTM matter? Greff et al.'s variants on tasks where memory matters.

    python -m npylstm.study                         # 8 variants x 5 seeds on the adding problem
    python -m npylstm.study --task continual        # the same, on a stream that is never reset
    python -m npylstm.study --help

Every variant of "LSTM: A Search Space Odyssey" (Greff et al., 2017) trains
for every seed with Adam on mini-batches drawn fresh from the task; then it is
scored on a test set that is fixed per task and seed (so every variant sees the
same data and starts from the same weights). ``run_study(config)`` does the
work through a ``concurrent.futures.Executor`` and writes no files; ``main()``
writes results.json, curves.png, final.png, gradflow.png and gates.png.
docs/study.md explains the tasks and what the pictures show.

Shapes: T steps, N sequences, H hidden size, I input size.
"""
import argparse
import concurrent.futures
import contextlib
import dataclasses
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from . import tasks
from .argtypes import (at_least, check_between, check_integer, check_positive, fraction,
                        positive_float, probability)
from .files import cannot_write, make_folder, write_json
from .functional.cell import lstm_cell_backward, lstm_cell_forward
from .gates import cell_weights
from .loss import MSELoss
from .model import LSTMRegressor
from .module import no_grad
from .optim import Adam

# Greff et al.'s names. V is the vanilla LSTM *with* peepholes; NP is torch's
# LSTM; the others are V with one part removed, or (CIFG) two gates coupled.
VARIANTS = {
    "V": dict(peephole=True),
    "NP": dict(),
    "NIG": dict(peephole=True, ablate=("input_gate",)),
    "NFG": dict(peephole=True, ablate=("forget_gate",)),
    "NOG": dict(peephole=True, ablate=("output_gate",)),
    "NIAF": dict(peephole=True, ablate=("input_activation",)),
    "NOAF": dict(peephole=True, ablate=("output_activation",)),
    "CIFG": dict(peephole=True, input_forget=True),
}
DESCRIPTIONS = {
    "V": "vanilla LSTM with peepholes",
    "NP": "no peepholes (torch's LSTM)",
    "NIG": "no input gate",
    "NFG": "no forget gate",
    "NOG": "no output gate",
    "NIAF": "no input activation (g = z_g)",
    "NOAF": "no output activation (h = o * c)",
    "CIFG": "coupled input and forget gate (f = 1 - i)",
}
STANDARD = "NP"           # whose gates gates.png shows: npylstm.LSTM's and torch's default

TASKS = {
    "adding": "the adding problem (Hochreiter & Schmidhuber 1997): the sum of two marked values",
    "continual": "adding-problem episodes back to back in a stream that is never reset "
                 "(Gers et al. 2000); a cue marks each episode's start",
    "sine": "the next value of a sine window with random phase and period in [20, 80)",
}
SOLVED_ERROR = 0.04       # Hochreiter's criterion: every test answer within 0.04
TEST_SIZE = 1000          # test answers: sequences, or episodes of the continual streams
TEST_EPISODES = 10        # scored episodes per test stream of the continual task
GRADFLOW_SIZE = 32        # test sequences for the gradient flow


@dataclass
class StudyConfig:
    """Settings of a study; the defaults are the command line's."""
    task: str = "adding"
    seq_len: int = 40                         # T; for "continual", steps per episode
    variants: Tuple[str, ...] = tuple(VARIANTS)
    seeds: int = 5                            # seeds 0 .. seeds-1 (why 5: docs/study.md)
    steps: int = 2000                         # Adam steps per run
    batch_size: int = 64
    hidden_size: int = 32
    lr: float = 0.03
    beta2: float = 0.95                       # Adam's second-moment decay (torch's default: 0.999)
    lr_final: float = 0.01                    # lr at the last step, as a fraction of lr
    lr_decay_start: float = 0.5               # share of the steps at constant lr before the decay
    workers: Optional[int] = None             # processes of the default pool; None: one per core
    test_size: int = TEST_SIZE
    eval_points: int = 25                     # test MSE this many times along the curve
    quiet: bool = False                       # no progress lines

    def validate(self):
        """Raise ValueError (naming the field) for the first setting that cannot run."""
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        self.variants = tuple(self.variants)
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"variants must be names from {', '.join(VARIANTS)}, "
                             f"got {list(self.variants)!r}")
        for name, minimum in (("seq_len", 2), ("seeds", 1), ("steps", 1), ("batch_size", 1),
                              ("hidden_size", 1), ("test_size", 1), ("eval_points", 1)):
            check_integer(self, name, minimum)
        check_between(self, "lr_final", 0, 1)
        check_between(self, "beta2", 0, 1, high_included=False)
        check_between(self, "lr_decay_start", 0, 1)
        if self.workers is not None and (isinstance(self.workers, bool) or
                                         not isinstance(self.workers, (int, np.integer))
                                         or self.workers < 1):
            raise ValueError(f"workers must be an integer >= 1 or None, got {self.workers!r}")
        check_positive(self, "lr")
        return self


# ----------------------------------------------------------------------------- data and model

def baseline(task):
    """(MSE, what it is) of the best constant answer: the bar a variant must clear."""
    if task == "sine":
        return 0.5, "always 0"                 # the variance of a sine
    return 1 / 6, "always 1.0"                 # the variance of a sum of two U(0, 1)


def make_batch(config, n, rng, episodes=1):
    """n fresh sequences of the task: x (T', n, I), y (n, 1) or (E, n, 1) for continual."""
    if config.task == "adding":
        return tasks.adding_problem(n, config.seq_len, rng)
    if config.task == "sine":
        return tasks.sine_windows(n, config.seq_len, rng)
    return tasks.continual_adding(n, episodes, config.seq_len, rng)


def test_set(config, seed):
    """The fixed test set of (task, seed), the same for every variant: test_size answers.

    For "continual", test_size // TEST_EPISODES streams of 1 + TEST_EPISODES
    episodes, from a zero state. The first episode is a warm-up and is not
    scored: in training the state is never zero after the first step, so a
    zero state is a situation the network never learns.
    """
    n = config.test_size
    if config.task == "continual":
        n = max(1, n // TEST_EPISODES)
    return make_batch(config, n, np.random.default_rng([seed, 2]), episodes=1 + TEST_EPISODES)


def make_model(config, variant, seed):
    """LSTMRegressor whose LSTM is the variant; the same seed gives every variant the same start.

    The seed's generator draws the LSTM's weights (peepholes last, when the
    variant has them) and then the Linear, which LSTMRegressor draws as if there
    were no peepholes, so V and NP share all but the peepholes.
    """
    I = {"adding": 2, "continual": 3, "sine": 1}[config.task]
    return LSTMRegressor(I, config.hidden_size, 1, rng=np.random.default_rng([seed, 0]),
                         **VARIANTS[variant])


def evaluate(config, model, x, y):
    """Test MSE, the largest absolute error and the share of answers within
    SOLVED_ERROR, from a zero state (eval mode, no cache)."""
    model.eval()
    with no_grad():
        if config.task == "continual":
            # The streams episode by episode, the state carried over; the
            # answer at each episode's last step is scored, after the warm-up.
            T = config.seq_len
            model(x[:T])
            pred = np.stack([model(x[e * T:(e + 1) * T], hx=model.state)
                             for e in range(1, len(y))])            # (E-1, N, 1)
            y = y[1:]
        else:
            pred = model(x)                                        # (N, 1)
    model.train()
    error = pred - y
    return (float(np.mean(error ** 2)), float(np.max(np.abs(error))),
            float(np.mean(np.abs(error) < SOLVED_ERROR)))


# ----------------------------------------------------------------------------- gradient flow

def gradient_flow(model, x, y):
    """Mean norms of dLoss/dh_t and dLoss/dc_t for the states t = 0 .. T.

    The state (h_t, c_t) is what the network carries from step t to step t+1
    (t = 0: the initial state). dLoss/dh_t and dLoss/dc_t are the gradients
    of the loss with respect to it: the numbers ``LSTM.backward`` returns as
    grad_h0 and grad_c0 for a sequence that starts after step t. The loss of
    a sequence is (prediction at the last step - target)^2. The steps are
    unrolled with the plain cell (functional/cell.py), so every number is
    there to see.

    Inputs:
    - x: (T, N, I); y: (N, 1), or (E, N, 1) for continual (the last target is used)

    Returns:
    - grad_h: (T+1,) mean over the N sequences of ||dLoss/dh_t||
    - grad_c: (T+1,) the same for c; grad_c[T] = 0, as the loss reads only h_T
    """
    lstm, linear = model.lstm, model.linear
    weights = cell_weights(lstm)                                   # with the variant's options
    T, N = x.shape[:2]
    H = lstm.hidden_size
    h, c = np.zeros((N, H), x.dtype), np.zeros((N, H), x.dtype)
    caches = []
    for t in range(T):
        h, c, cache = lstm_cell_forward(x[t], h, c, **weights)
        caches.append(cache)
    pred = h @ linear.weight.data.T + linear.bias.data            # (N, 1)
    grad_h = (2 * (pred - y[-1] if y.ndim == 3 else pred - y)) @ linear.weight.data   # (N, H)
    grad_c = np.zeros_like(grad_h)
    norms_h, norms_c = np.empty(T + 1), np.empty(T + 1)
    norms_h[T], norms_c[T] = np.linalg.norm(grad_h, axis=1).mean(), 0.0
    for t in reversed(range(T)):
        _, grad_h, grad_c, _ = lstm_cell_backward(grad_h, grad_c, caches[t])
        norms_h[t] = np.linalg.norm(grad_h, axis=1).mean()
        norms_c[t] = np.linalg.norm(grad_c, axis=1).mean()
    return norms_h, norms_c


# ----------------------------------------------------------------------------- one run

def learning_rate(config, step):
    """Adam's learning rate at ``step`` (0 .. steps-1).

    Constant lr for the first lr_decay_start of the steps, then a cosine down
    to lr * lr_final at the last step: with S = steps, s0 = the first step of
    the decay (round(lr_decay_start * (S - 1))) and u = (step - s0) / (S - 1 - s0),
    lr_t = lr (f + (1 - f) (1 + cos(pi u)) / 2), f = lr_final. lr_final = 1
    keeps lr constant. The large steps of the first part find the marks
    (the plateau at the baseline lasts hundreds of steps); the small steps at
    the end settle every answer to within the solved criterion.
    """
    f = config.lr_final
    start = round(config.lr_decay_start * (config.steps - 1))
    if f == 1 or step <= start:
        return config.lr
    cosine = 0.5 * (1 + math.cos(math.pi * (step - start) / (config.steps - 1 - start)))
    return config.lr * (f + (1 - f) * cosine)


def train_run(config, variant, seed):
    """Train one variant from one seed and score it; returns the run's record (a dict).

    The standard variant's record also carries its trained weights under
    "weights" (a state dict), for gates.png; ``run_study`` takes them out
    before it returns, so results.json stays plain JSON.
    """
    record, model = train_model(config, variant, seed)
    if variant == STANDARD and not record["failed"]:
        record["weights"] = model.state_dict()
    return record


def train_model(config, variant, seed):
    """Train one variant from one seed; returns (record, trained model).

    One Adam step per fresh mini-batch. For "continual", each step is one
    more episode of the same ``batch_size`` streams: the state is carried
    over from the last step and never reset, and the gradient is truncated
    at the episode's start.
    """
    start = time.perf_counter()
    model = make_model(config, variant, seed)
    optimizer = Adam(model.parameters(), lr=config.lr, betas=(0.9, config.beta2))
    criterion = MSELoss()
    test_x, test_y = test_set(config, seed)
    rng = np.random.default_rng([seed, 1])
    every = max(1, config.steps // config.eval_points)
    curve_steps, curve_mse = [], []
    state = None
    for step in range(config.steps + 1):
        if step % every == 0 or step == config.steps:
            mse = evaluate(config, model, test_x, test_y)[0]
            curve_steps.append(step)
            curve_mse.append(mse if math.isfinite(mse) else None)
            if not math.isfinite(mse):
                break                                          # diverged: stop, report it
        if step == config.steps:
            break
        x, y = make_batch(config, config.batch_size, rng)
        if config.task == "continual":
            y = y[0]                                           # (N, 1): one episode
        pred = model(x, hx=state)
        optimizer.param_groups[0]["lr"] = learning_rate(config, step)
        optimizer.zero_grad()
        criterion(pred, y)
        model.backward(criterion.backward())
        optimizer.step()
        if config.task == "continual":
            state = model.state          # carried to the next episode; no gradient through it
    final_mse, max_error, within = evaluate(config, model, test_x, test_y)
    finite = math.isfinite(final_mse)
    grad_h, grad_c = gradient_flow(model, test_x[:, :GRADFLOW_SIZE],
                                   test_y[..., :GRADFLOW_SIZE, :])
    return dict(variant=variant, seed=seed, failed=False, error=None,
                steps=curve_steps, test_mse=curve_mse,
                final_mse=final_mse if finite else None,
                max_abs_error=max_error if finite else None,
                within_criterion=within if finite else None,
                solved=bool(finite and max_error < SOLVED_ERROR),
                gradflow=dict(grad_h=grad_h.tolist(), grad_c=grad_c.tolist()),
                seconds=time.perf_counter() - start), model


def _one_blas_thread():
    """One BLAS thread for this run, when threadpoolctl is installed.

    The executor already runs one run per core. A multi-threaded BLAS on top
    of it fights for the same cores: on the shared 2-core machine a training
    step was 13x slower (27 s against 2.1 s for 400 steps, docs/study.md).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _run_safely(config, variant, seed):
    """train_run, in one BLAS thread; an exception becomes a failed run instead of raising."""
    try:
        with _one_blas_thread():
            return train_run(config, variant, seed)
    except Exception as err:                                   # a failed run must not end the study
        return _failed(variant, seed, err, traceback.format_exc())


def _failed(variant, seed, err, trace=""):
    return dict(variant=variant, seed=seed, failed=True,
                error=f"{type(err).__name__}: {err}", traceback=trace,
                steps=[], test_mse=[], final_mse=None, max_abs_error=None, within_criterion=None,
                solved=False,
                gradflow=None, seconds=None)


# ----------------------------------------------------------------------------- the study

# ----------------------------------------------------------------------------- significance

REFERENCE = "V"           # every variant is compared with Greff et al.'s vanilla LSTM
ALPHA = 0.05              # two-sided significance level of the marks


def _betacf(a, b, x):
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 301):
        m2 = 2 * m
        for coef in (m * (b - m) * x / ((qam + m2) * (a + m2)),          # even step
                     -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # odd step
            d = 1 + coef * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + coef / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1.

    The continued fraction of Numerical Recipes (section 6.4); it converges
    fast for x < (a + 1) / (a + b + 2), and I_x(a, b) = 1 - I_{1-x}(b, a)
    gives the rest.
    """
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1 - math.exp(log_front) * _betacf(b, a, 1 - x) / b


def student_t_sf2(t, df):
    """Two-sided tail of Student's t with df degrees of freedom: P(|T| >= |t|).

    P(|T| >= |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
    """
    if math.isinf(t):
        return 0.0
    return betainc(df / 2, 0.5, df / (df + t * t))


def student_t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * student_t_sf2(t, df)
    return 1 - tail if t > 0 else tail


def paired_t_test(a, b):
    """Paired t-test of a against b (equal-length sequences, one pair per seed).

    Returns (mean difference a - b, t, two-sided p, pairs); t and p are None
    with fewer than two pairs. Pairs that are all equal give p = 1; a
    difference that is the same nonzero number in every pair gives p = 0.
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    if n < 2:
        return (float(d.mean()) if n else None), None, None, n
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return mean, (0.0 if mean == 0 else math.copysign(math.inf, mean)), \
            (1.0 if mean == 0 else 0.0), n
    t = mean / (sd / math.sqrt(n))
    return mean, t, student_t_sf2(t, n - 1), n


def compare_with_reference(runs, variant, reference=REFERENCE, alpha=ALPHA):
    """The paired t-test of ``variant`` against ``reference`` on log10 of the final test MSE.

    A seed gives a pair when both runs finished (failed and diverged runs
    are left out; ``pairs`` says how many were used). The test is on log10
    because the final MSEs of one variant spread over orders of magnitude and
    differ between variants by factors: the difference of logs is the log of
    the ratio, closer to normal than the difference of MSEs, and its mean is
    the geometric mean ratio (``ratio``). Returns a dict (JSON types).
    """
    by_seed = {r["seed"]: r["final_mse"] for r in runs[reference] if r["final_mse"] is not None}
    pairs = [(math.log10(r["final_mse"]), math.log10(by_seed[r["seed"]])) for r in runs[variant]
             if r["final_mse"] is not None and r["seed"] in by_seed
             and r["final_mse"] > 0 and by_seed[r["seed"]] > 0]
    mean, t, p, n = paired_t_test([a for a, _ in pairs], [b for _, b in pairs])
    return dict(reference=reference, pairs=n,
                ratio=None if mean is None else 10 ** mean,
                t=None if t is None or math.isinf(t) else t, p=p,
                significant=None if p is None else bool(p < alpha))


def summarize(config, runs):
    """One row per variant, sorted by median final MSE (variants with no finished run last).

    With V among the variants, every other row has ``vs_V``: the paired
    t-test of its final test MSE against V's (``compare_with_reference``).
    """
    rows = []
    for variant in config.variants:
        finals = [r["final_mse"] for r in runs[variant] if r["final_mse"] is not None]
        rows.append(dict(
            variant=variant, description=DESCRIPTIONS[variant],
            median_final_mse=float(np.median(finals)) if finals else None,
            best_final_mse=min(finals) if finals else None,
            worst_final_mse=max(finals) if finals else None,
            solved=sum(r["solved"] for r in runs[variant]),
            median_within=(float(np.median([r["within_criterion"] for r in runs[variant]
                                            if r.get("within_criterion") is not None]))
                           if any(r.get("within_criterion") is not None for r in runs[variant])
                           else None),
            failed=sum(r["failed"] for r in runs[variant]),
            diverged=sum(not r["failed"] and r["final_mse"] is None for r in runs[variant]),
            seeds=len(runs[variant]),
            vs_V=(compare_with_reference(runs, variant)
                  if REFERENCE in runs and variant != REFERENCE else None)))
    return sorted(rows, key=lambda row: (row["median_final_mse"] is None,
                                         row["median_final_mse"] or 0.0))


SIGNIFICANCE = (f"paired t-test over seeds of log10(final test MSE) against {REFERENCE}, "
                f"two-sided; * marks p < {ALPHA}")


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _progress_line(done, total, record, elapsed):
    if record["failed"]:
        what = f"FAILED ({record['error']})"
    elif record["final_mse"] is None:
        what = "diverged (test MSE not finite)"
    else:
        what = (f"test MSE {record['final_mse']:.2e}, " + ("solved" if record["solved"] else
                                                           "not solved")
                + f", {record['seconds']:.1f} s")
    left = elapsed / done * (total - done)
    return (f"[{done:{len(str(total))}d}/{total}] {record['variant']:<4} seed {record['seed']}: "
            f"{what}; about {_duration(left)} left")


def run_study(config=None, executor=None):
    """Train every variant for every seed and return the content of results.json.

    Inputs:
    - config: StudyConfig (default: the command line's defaults)
    - executor: any concurrent.futures.Executor, for example a
      ProcessPoolExecutor, or ``client.get_executor()`` of a dask.distributed
      Client; None: a process pool of ``config.workers`` processes

    Returns a dict (plain JSON types):
    - config: the settings; task: name, description, baseline MSE, solved criterion
    - runs: {variant: [one record per seed]}, each with seed, steps, test_mse
      (the learning curve), final_mse, max_abs_error, solved, gradflow
      (grad_h, grad_c: mean norms for t = 0..T), seconds, failed and error
    - summary: one row per variant, sorted by median final MSE
    - seconds: wall time of the study
    A run that raises is recorded as failed; the others go on. Writes no files.
    """
    return _run_study(config, executor)[0]


def _run_study(config, executor):
    """run_study's work; returns (results, weights): weights maps each seed of
    the standard variant (NP) to its trained state dict, so that gates.png
    needs no second training."""
    config = (config or StudyConfig()).validate()
    jobs = [(variant, seed) for variant in config.variants for seed in range(config.seeds)]
    own = executor is None
    if own:
        executor = concurrent.futures.ProcessPoolExecutor(config.workers or os.cpu_count())
    start = time.perf_counter()
    records = {}
    try:
        futures = {executor.submit(_run_safely, config, variant, seed): (variant, seed)
                   for variant, seed in jobs}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            variant, seed = futures[future]
            try:
                record = future.result()
            except Exception as err:                       # the executor itself failed the run
                record = _failed(variant, seed, err)
            records[variant, seed] = record
            if not config.quiet:
                print(_progress_line(done, len(jobs), record, time.perf_counter() - start),
                      flush=True)
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    runs = {variant: [records[variant, seed] for seed in range(config.seeds)]
            for variant in config.variants}
    weights = {seed: record.pop("weights") for (variant, seed), record in records.items()
               if "weights" in record}
    mse, what = baseline(config.task)
    results = dict(
        config=dataclasses.asdict(config),
        task=dict(name=config.task, description=TASKS[config.task], baseline_mse=mse,
                  baseline=what, solved_error=SOLVED_ERROR,
                  solved="every test answer within 0.04 of its target"),
        runs=runs, summary=summarize(config, runs),
        significance=dict(method=SIGNIFICANCE, reference=REFERENCE, alpha=ALPHA,
                          statistic="log10(final_mse)", pairs="seeds"),
        seconds=time.perf_counter() - start)
    return results, weights


def format_table(results):
    """The closing table: variants sorted by median final MSE.

    "within" is the median over seeds of the share of test answers within
    SOLVED_ERROR ("solved" needs all of them); "x V" is the geometric mean
    over seeds of the final MSE's ratio to V's, "p" the two-sided p of the
    paired t-test on log10 of the final MSE
    (``compare_with_reference``); * marks p < 0.05.
    """
    def number(value):
        return "-" if value is None else f"{value:.2e}"

    def versus(row):
        vs = row.get("vs_V")
        if vs is None or vs["ratio"] is None:
            return f"{'':>8}{'':>9}"
        p = "-" if vs["p"] is None else f"{vs['p']:.3f}" if vs["p"] >= 0.001 else "<0.001"
        ratio = f"{vs['ratio']:.2g}" if vs["ratio"] < 100 else f"{vs['ratio']:.0f}"
        return f"{ratio:>8}{p + ('*' if vs['significant'] else ' '):>9}"

    def within(row):
        w = row.get("median_within")
        return "-" if w is None else f"{100 * w:.1f}%"

    seeds = results["config"]["seeds"]
    lines = [f"{'variant':<8}{'median MSE':>12}{'best':>10}{'worst':>10}{'solved':>8}"
             f"{'within':>8}{'x V':>8}{'p':>8}   notes",
             "-" * 92]
    for row in results["summary"]:
        notes = [row["description"]]
        if row["failed"]:
            notes.append(f"{row['failed']} FAILED")
        if row["diverged"]:
            notes.append(f"{row['diverged']} diverged")
        vs = row.get("vs_V")
        if vs is not None and vs["pairs"] < row["seeds"]:
            notes.append(f"test over {vs['pairs']} seeds")
        lines.append(f"{row['variant']:<8}{number(row['median_final_mse']):>12}"
                     f"{number(row['best_final_mse']):>10}{number(row['worst_final_mse']):>10}"
                     f"{row['solved']:>5}/{seeds:<2}{within(row):>8}{versus(row)}  "
                     + "; ".join(notes))
    lines.append(f"baseline: MSE {results['task']['baseline_mse']:.3f} by answering "
                 f"{results['task']['baseline']}; solved: {results['task']['solved']}")
    lines.append(f"within: median over seeds of the share of test answers within "
                 f"{results['task'].get('solved_error', SOLVED_ERROR)} of their target")
    if any(row.get("vs_V") for row in results["summary"]):
        lines.append(f"x V: geometric mean over seeds of final MSE / V's; p: "
                     f"{results.get('significance', {}).get('method', SIGNIFICANCE)}")
    return "\n".join(lines)


def best_run(results, variant):
    """The finished run of ``variant`` with the lowest final MSE, or None."""
    finished = [r for r in results["runs"].get(variant, []) if r["final_mse"] is not None]
    return min(finished, key=lambda r: r["final_mse"]) if finished else None


# ----------------------------------------------------------------------------- pictures

COLORS = {"V": "black", "NP": "tab:blue", "NIG": "tab:green", "NFG": "tab:red",
          "NOG": "tab:purple", "NIAF": "tab:olive", "NOAF": "tab:orange", "CIFG": "tab:cyan"}
STYLES = {"V": "-", "NP": "--"}


def _finished(results, variant):
    return [r for r in results["runs"][variant] if r["final_mse"] is not None]


def _title(results):
    c = results["config"]
    return (f"{results['task']['name']} task, T={c['seq_len']}, H={c['hidden_size']}, "
            f"{c['steps']} steps of {c['batch_size']}, {c['seeds']} seed{'s' * (c['seeds'] != 1)}")


def plot_curves(results, path):
    """curves.png: test MSE against step, per variant the median over seeds, the range shaded."""
    from .plots import _figure

    fig = _figure(figsize=(11, 5.5), layout="constrained")
    ax = fig.add_subplot()
    for row in results["summary"]:
        variant = row["variant"]
        runs = [r for r in _finished(results, variant) if None not in r["test_mse"]]
        if not runs:
            continue
        steps = runs[0]["steps"]
        curves = np.array([r["test_mse"] for r in runs])                # (seeds, points)
        ax.plot(steps, np.median(curves, axis=0), color=COLORS[variant],
                linestyle=STYLES.get(variant, "-"), linewidth=2 if variant in STYLES else 1.4,
                label=f"{variant}: {row['description']}")
        ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=COLORS[variant],
                        alpha=0.12, linewidth=0)
    ax.axhline(results["task"]["baseline_mse"], color="grey", linestyle=":",
               label=f"baseline: answer {results['task']['baseline']} "
                       f"(MSE {results['task']['baseline_mse']:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("test MSE")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small",
              title="median over seeds,\nrange shaded", title_fontsize="small")
    ax.set_title("Learning curves: " + _title(results), fontsize=10)
    fig.savefig(path, dpi=80)


def plot_final(results, path):
    """final.png: the final test MSE of every run, one column per variant, best median left."""
    from .plots import _figure

    fig = _figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    seeds = results["config"]["seeds"]
    rows = results["summary"]
    for k, row in enumerate(rows):
        finals = [r["final_mse"] for r in _finished(results, row["variant"])]
        jitter = np.linspace(-0.12, 0.12, len(finals)) if len(finals) > 1 else np.zeros(1)
        if finals:
            ax.scatter(k + jitter[:len(finals)], finals, color=COLORS[row["variant"]], s=22,
                       zorder=3)
            ax.plot([k - 0.25, k + 0.25], [row["median_final_mse"]] * 2, color="black",
                    linewidth=1.5, zorder=2)
        note = f"{row['solved']}/{seeds}"
        if row["failed"] or row["diverged"]:
            note += f"\n{row['failed'] + row['diverged']} lost"
        ax.annotate(note, (k, 1.0), xycoords=("data", "axes fraction"), xytext=(0, -4),
                    textcoords="offset points", ha="center", va="top", fontsize=8)
    ax.axhline(results["task"]["baseline_mse"], color="grey", linestyle=":",
               label=f"baseline: answer {results['task']['baseline']} "
                       f"(MSE {results['task']['baseline_mse']:.3f})")
    ax.set_xticks(range(len(rows)), [row["variant"] for row in rows])
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.set_ylabel("final test MSE (one point per seed, bar: median)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("Final test MSE, sorted by median; at the top: seeds solved "
                 f"(every |error| < {results['task']['solved_error']})\n" + _title(results),
                 fontsize=10)
    fig.savefig(path, dpi=80)


def plot_gradflow(results, path):
    """gradflow.png: mean ||dLoss/dc_t|| and ||dLoss/dh_t|| against t, median over seeds."""
    from .plots import _figure

    fig = _figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for row in results["summary"]:
        variant = row["variant"]
        runs = _finished(results, variant)
        if not runs:
            continue
        for ax, key in zip(axes, ("grad_c", "grad_h")):
            norms = np.median([r["gradflow"][key] for r in runs], axis=0)   # (T+1,)
            t = np.arange(len(norms))
            shown = norms > 0                        # grad_c at the readout is 0 by definition
            ax.plot(t[shown], norms[shown], color=COLORS[variant],
                    linestyle=STYLES.get(variant, "-"), linewidth=2 if variant in STYLES else 1.4,
                    label=variant)
    for ax, name in zip(axes, ("c", "h")):
        ax.set_yscale("log")
        ax.set_xlabel("t (state after step t; the loss reads h at the last step)")
        ax.set_title(f"mean ||dLoss/d{name}_t|| over {GRADFLOW_SIZE} test sequences",
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("gradient norm (median over seeds)")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.suptitle("How far back the error signal reaches: " + _title(results), fontsize=11)
    fig.savefig(path, dpi=80)


def plot_standard_gates(results, path, weights=None):
    """gates.png: the gates of the best seed of the standard LSTM (NP) on a test sequence.

    weights: None, or {seed: state dict} of the standard variant's trained
    runs (what ``main`` gets from the workers). Without the best seed's
    weights, its run is trained again from its seed (training is
    deterministic), since results.json keeps no weights. Returns False when
    there is no such run.
    """
    from .gates import plot_gates

    config = StudyConfig(**{**results["config"], "variants": tuple(results["config"]["variants"])})
    best = best_run(results, STANDARD)
    if best is None:
        return False
    if weights is not None and best["seed"] in weights:
        model = make_model(config, STANDARD, best["seed"])
        model.load_state_dict(weights[best["seed"]])
    else:
        with _one_blas_thread():
            model = train_model(config, STANDARD, best["seed"])[1]
    x, _ = test_set(config, best["seed"])
    hx = None
    if config.task == "continual":
        T = config.seq_len
        _, hx = model.lstm(x[:T, :1])                        # after the warm-up episode
        x = x[T:4 * T, :1]                                   # the next three episodes
        names = ("value", "mark", "episode start")
    elif config.task == "adding":
        x = x[:, :1]
        names = ("value", "mark")
    else:
        x = x[:, :1]
        names = ("sine",)
    marked = np.flatnonzero(x[:, 0, 1]) if config.task != "sine" else None
    plot_gates(model.lstm, x, path, hx, input_names=names, marked_steps=marked,
               title=f"{STANDARD}, {DESCRIPTIONS[STANDARD]}: seed {best['seed']}, "
                     f"test MSE {best['final_mse']:.2e}, on "
                     + ("episodes 2-4 of test stream 0" if hx is not None else "test sequence 0")
                     + f" of the {config.task} task")
    return True


# ----------------------------------------------------------------------------- command line

def _variant_list(text):
    if text == "all":
        return tuple(VARIANTS)
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or a comma-separated list of {', '.join(VARIANTS)}, got {text!r}")
    return names


PROG = "python -m npylstm.study"


def build_parser():
    """The argparse parser of ``python -m npylstm.study``; its defaults are StudyConfig's."""
    d = StudyConfig()
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train Greff et al.'s LSTM variants on a memory task and write "
                    "results.json, curves.png, final.png, gradflow.png and gates.png into --out.",
        epilog="Variants: " + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()))
    p.add_argument("--task", default=d.task, choices=list(TASKS), help="default %(default)s")
    p.add_argument("--seq-len", type=at_least(2), default=d.seq_len, metavar="T",
                   help="steps per sequence (continual: per episode); default %(default)s")
    p.add_argument("--variants", type=_variant_list, default=d.variants, metavar="LIST",
                   help="'all' (default) or a comma-separated list, e.g. V,NP,NFG")
    p.add_argument("--seeds", type=at_least(1), default=d.seeds, metavar="K",
                   help="seeds per variant (default %(default)s)")
    p.add_argument("--steps", type=at_least(1), default=d.steps, metavar="S",
                   help="Adam steps per run (default %(default)s)")
    p.add_argument("--batch-size", type=at_least(1), default=d.batch_size, metavar="B",
                   help="default %(default)s")
    p.add_argument("--hidden-size", type=at_least(1), default=d.hidden_size, metavar="H",
                   help="default %(default)s")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="Adam (default %(default)s)")
    p.add_argument("--beta2", type=probability, default=d.beta2,
                   help="Adam's second-moment decay (default %(default)s; torch's is 0.999, "
                        "docs/study.md says why not here)")
    p.add_argument("--lr-final", type=fraction, default=d.lr_final, metavar="F",
                   help="learning rate at the last step as a fraction of --lr, reached along a "
                        "cosine; 1 keeps it constant (default %(default)s)")
    p.add_argument("--lr-decay-start", type=fraction, default=d.lr_decay_start, metavar="F",
                   help="fraction of the steps at constant --lr before the decay begins "
                        "(default %(default)s)")
    p.add_argument("--workers", type=at_least(1), default=d.workers, metavar="W",
                   help="processes (default: one per core)")
    p.add_argument("--out", default=os.path.join("runs", "study"), metavar="DIR",
                   help="output folder (default %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="write results.json only")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def write_outputs(results, out, plots=True, weights=None):
    """results.json and (with ``plots``) the pictures into ``out``; returns the names written.

    weights: as for ``plot_standard_gates`` (None: gates.png trains its run again)."""
    make_folder(out)
    write_json(os.path.join(out, "results.json"), results)
    if not plots:
        return ["results.json"]
    plot_curves(results, os.path.join(out, "curves.png"))
    plot_final(results, os.path.join(out, "final.png"))
    plot_gradflow(results, os.path.join(out, "gradflow.png"))
    written = ["results.json", "curves.png", "final.png", "gradflow.png"]
    if plot_standard_gates(results, os.path.join(out, "gates.png"), weights):
        written.append("gates.png")
    return written


def main(argv=None):
    """The command line; returns the exit status (argument errors exit 2 through argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    config = StudyConfig(**{k: v for k, v in vars(args).items() if k in names}).validate()
    try:
        make_folder(args.out)
    except OSError as err:
        return cannot_write(PROG, err)
    if not args.quiet:
        print(f"{len(config.variants)} variants x {config.seeds} seeds on {config.task} "
              f"(T={config.seq_len}, H={config.hidden_size}, {config.steps} steps of "
              f"{config.batch_size}), {config.workers or os.cpu_count()} workers", flush=True)
    results, weights = _run_study(config, None)
    try:
        written = write_outputs(results, args.out, plots=not args.no_plots, weights=weights)
    except OSError as err:
        return cannot_write(PROG, err)
    if not args.quiet:
        print()
        print(format_table(results))
        print(f"study time: {_duration(results['seconds'])}")
        print(f"wrote {', '.join(os.path.join(args.out, name) for name in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
