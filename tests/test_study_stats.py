"""npylstm.study: the Student-t test behind the significance marks, and the learning-rate schedule."""
import math

import numpy as np
import pytest

from npylstm import study
from npylstm.study import StudyConfig


# Two-sided 5% critical values t_{0.975, df} from printed t tables (e.g. NIST/SEMATECH
# e-Handbook, table 1.3.6.7.2), and one-sided 5% t_{0.95, df}. Tables round to 3 decimals,
# so the CDF there is 0.975 (0.95) only to about 1e-4: that is the tolerance.
CRITICAL_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 7: 2.365, 10: 2.228, 30: 2.042}
CRITICAL_95 = {3: 2.353, 4: 2.132, 9: 1.833}


@pytest.mark.parametrize("df, t", sorted(CRITICAL_975.items()))
def test_t_cdf_at_tabulated_two_sided_critical_values(df, t):
    assert abs(study.student_t_cdf(t, df) - 0.975) < 1e-4
    assert abs(study.student_t_cdf(-t, df) - 0.025) < 1e-4
    assert abs(study.student_t_sf2(t, df) - 0.05) < 2e-4


@pytest.mark.parametrize("df, t", sorted(CRITICAL_95.items()))
def test_t_cdf_at_tabulated_one_sided_critical_values(df, t):
    assert abs(study.student_t_cdf(t, df) - 0.95) < 1e-4


@pytest.mark.parametrize("t", [-7.5, -1.0, -0.2, 0.0, 0.3, 1.0, 2.5, 40.0])
def test_t_cdf_against_closed_forms(t):
    # df = 1 is the Cauchy distribution, df = 2 has a closed form too (exact up to round-off).
    assert study.student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)
    assert study.student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)


@pytest.mark.parametrize("x", [0.0, 0.01, 0.3, 0.5, 0.77, 0.999, 1.0])
def test_betainc_against_closed_forms(x):
    assert study.betainc(1, 1, x) == pytest.approx(x, abs=1e-14)
    assert study.betainc(3.5, 1, x) == pytest.approx(x ** 3.5, abs=1e-14)
    assert study.betainc(1, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, abs=1e-14)
    assert study.betainc(2, 3, x) + study.betainc(3, 2, 1 - x) == pytest.approx(1, abs=1e-14)


def test_paired_t_test_by_hand():
    a, b = [1.0, 3.0, 4.0, 9.0], [0.0, 1.0, 1.0, 5.0]             # differences 1, 2, 3, 4
    mean, t, p, n = study.paired_t_test(a, b)
    assert (mean, n) == (2.5, 4)
    assert t == pytest.approx(2.5 / (math.sqrt(5 / 3) / 2), rel=1e-12)   # sd of 1..4 = sqrt(5/3)
    assert p == pytest.approx(2 * (1 - study.student_t_cdf(t, 3)), rel=1e-12)
    assert 0.02 < p < 0.05                                        # t = 3.87 > 3.182, < 4.541 (p 0.02)
    assert study.paired_t_test([1, 2], [1, 2])[2] == 1.0          # no difference at all
    assert study.paired_t_test([2, 3], [1, 2])[2] == 0.0          # the same difference every time
    assert study.paired_t_test([2], [1])[1:3] == (None, None)     # one pair: no test


def planted_runs(seeds=5):
    """V, a variant 10x worse in every seed (with noise), and one that is V plus noise."""
    rng = np.random.default_rng(0)
    v = 10 ** rng.uniform(-4, -3, seeds)
    finals = {"V": v, "NFG": v * 10 * 10 ** rng.normal(0, 0.1, seeds),
              "NP": v * 10 ** (0.3 * np.array([1, -1, 1, -1, 0.5])[:seeds])}
    return {name: [dict(variant=name, seed=s, final_mse=float(m), solved=False, failed=False)
                   for s, m in enumerate(ms)] for name, ms in finals.items()}


def test_significance_marks_in_summary_and_table():
    runs = planted_runs()
    runs["NP"][2] = dict(runs["NP"][2], final_mse=None)                # a diverged seed
    config = StudyConfig(variants=("V", "NFG", "NP"), seeds=5)
    summary = {row["variant"]: row for row in study.summarize(config, runs)}
    assert summary["V"]["vs_V"] is None
    nfg, np_ = summary["NFG"]["vs_V"], summary["NP"]["vs_V"]
    assert nfg["significant"] is True and nfg["p"] < 1e-4 and nfg["pairs"] == 5
    assert nfg["ratio"] == pytest.approx(10, rel=0.2)
    assert np_["significant"] is False and np_["p"] > 0.05 and np_["pairs"] == 4
    logs = {k: np.log10([r["final_mse"] for r in runs[k]]) for k in ("V", "NFG")}
    d = logs["NFG"] - logs["V"]
    assert nfg["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(5)), rel=1e-12)
    table = study.format_table(dict(config=dict(seeds=5), summary=study.summarize(config, runs),
                                    task=dict(baseline_mse=1 / 6, baseline="always 1.0",
                                              solved="...")))
    lines = {line.split()[0]: line for line in table.splitlines() if line[:4].strip()}
    assert "*" in lines["NFG"] and "*" not in lines["NP"] and "*" not in lines["V"]
    assert "test over 4 seeds" in lines["NP"]
    assert "paired t-test" in table


def test_no_marks_without_v():
    runs = planted_runs()
    del runs["V"]
    rows = study.summarize(StudyConfig(variants=("NFG", "NP"), seeds=5), runs)
    assert all(row["vs_V"] is None for row in rows)


def test_learning_rate_schedule():
    config = StudyConfig(lr=0.02, steps=101, lr_final=0.05, lr_decay_start=0.0)
    rates = [study.learning_rate(config, step) for step in range(101)]
    assert rates[0] == 0.02 and rates[-1] == pytest.approx(0.001, rel=1e-12)
    assert rates[50] == pytest.approx(0.02 * (0.05 + 0.95 / 2), rel=1e-12)   # cos(pi/2) = 0
    assert all(a > b for a, b in zip(rates, rates[1:]))
    late = StudyConfig(lr=0.02, steps=101, lr_final=0.05, lr_decay_start=0.5)
    rates = [study.learning_rate(late, step) for step in range(101)]
    assert set(rates[:51]) == {0.02}                             # constant up to step 50
    assert rates[75] == pytest.approx(0.02 * (0.05 + 0.95 / 2), rel=1e-12)   # half-way down
    assert rates[-1] == pytest.approx(0.001, rel=1e-12)
    assert all(a > b for a, b in zip(rates[50:], rates[51:]))
    constant = StudyConfig(lr=0.02, steps=101, lr_final=1.0)
    assert {study.learning_rate(constant, step) for step in range(101)} == {0.02}
    never = StudyConfig(lr=0.02, steps=101, lr_final=0.05, lr_decay_start=1.0)
    assert {study.learning_rate(never, step) for step in range(101)} == {0.02}


def test_training_uses_the_schedule(monkeypatch):
    seen = []

    class Recording(study.Adam):
        def step(self):
            seen.append(self.param_groups[0]["lr"])
            super().step()

    monkeypatch.setattr(study, "Adam", Recording)
    config = StudyConfig(seq_len=6, seeds=1, steps=5, batch_size=4, hidden_size=3, test_size=8,
                         eval_points=1, lr=0.1, lr_final=0.1, lr_decay_start=0.0,
                         variants=("NP",), quiet=True)
    study.train_run(config, "NP", 0)
    assert seen == [study.learning_rate(config, s) for s in range(5)]
    assert seen[0] == 0.1 and seen[-1] == pytest.approx(0.01)


def test_training_uses_beta2(monkeypatch):
    made = []

    class Recording(study.Adam):
        def __init__(self, params, **kwargs):
            made.append(kwargs)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(study, "Adam", Recording)
    config = StudyConfig(seq_len=6, seeds=1, steps=2, batch_size=4, hidden_size=3, test_size=8,
                         eval_points=1, beta2=0.7, variants=("NP",), quiet=True)
    study.train_run(config, "NP", 0)
    assert made == [dict(lr=config.lr, betas=(0.9, 0.7))]
    assert study.build_parser().parse_args(["--beta2", "0.5"]).beta2 == 0.5


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "0.5"])
def test_bad_lr_final(value):
    with pytest.raises(ValueError, match="lr_final"):
        StudyConfig(lr_final=value).validate()
    with pytest.raises(ValueError, match="lr_decay_start"):
        StudyConfig(lr_decay_start=value).validate()


def test_share_within_the_criterion_in_summary_and_table():
    runs = planted_runs()
    for k, r in enumerate(runs["NP"]):
        r["within_criterion"] = [0.99, 0.995, 1.0, 0.98, 0.97][k]
    rows = {row["variant"]: row for row in
            study.summarize(StudyConfig(variants=("V", "NFG", "NP"), seeds=5), runs)}
    assert rows["NP"]["median_within"] == 0.99 and rows["V"]["median_within"] is None
    table = study.format_table(dict(config=dict(seeds=5), summary=list(rows.values()),
                                    task=dict(baseline_mse=1 / 6, baseline="always 1.0",
                                              solved="...", solved_error=0.04)))
    line = next(line for line in table.splitlines() if line.startswith("NP "))
    assert "99.0%" in line


@pytest.mark.parametrize("argv", [["--lr-final", "2"], ["--lr-final", "x"], ["--lr-decay-start", "-1"]])
def test_bad_schedule_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        study.build_parser().parse_args(argv)
    assert exit_.value.code == 2 and argv[0] in capsys.readouterr().err


def test_schedule_arguments_reach_the_config():
    args = study.build_parser().parse_args(["--lr-final", "0.1", "--lr-decay-start", "0.25"])
    assert (args.lr_final, args.lr_decay_start) == (0.1, 0.25)
