"""npylstm.study: the command line, failed runs, executors (dask.distributed) and the gradient flow."""
import concurrent.futures
import json
import subprocess
import sys

import numpy as np
import pytest

import npylstm
from npylstm import study
from npylstm.study import StudyConfig, run_study

TINY = dict(seq_len=6, seeds=2, steps=3, batch_size=8, hidden_size=4, test_size=40,
            eval_points=3, quiet=True)
RUN_KEYS = {"variant", "seed", "failed", "error", "steps", "test_mse", "final_mse", "within_criterion",
            "max_abs_error", "solved", "gradflow", "seconds"}


def tiny(**changes):
    return StudyConfig(**{**TINY, "variants": ("NP",), **changes})


def test_command_line_writes_every_file(tmp_path):
    out = tmp_path / "study"
    proc = subprocess.run(
        [sys.executable, "-m", "npylstm.study", "--variants", "NP,V,NFG", "--seeds", "2", "--steps", "3",
         "--seq-len", "6", "--hidden-size", "4", "--batch-size", "8", "--workers", "1",
         "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "[6/6]" in proc.stdout and "left" in proc.stdout, proc.stdout      # progress lines
    assert "median MSE" in proc.stdout, proc.stdout                          # closing table
    for name in ("results.json", "curves.png", "final.png", "gradflow.png", "gates.png"):
        assert (out / name).is_file(), name
    for name in ("curves.png", "final.png", "gradflow.png", "gates.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"config", "task", "runs", "summary", "significance", "seconds"}
    assert results["config"]["variants"] == ["NP", "V", "NFG"] and results["config"]["steps"] == 3
    assert results["task"]["name"] == "adding" and results["task"]["baseline_mse"] == 1 / 6
    assert set(results["runs"]) == {"NP", "V", "NFG"}
    assert [r["seed"] for r in results["runs"]["V"]] == [0, 1]
    for record in sum(results["runs"].values(), []):
        assert set(record) == RUN_KEYS, set(record) ^ RUN_KEYS
        assert record["failed"] is False and record["steps"][-1] == 3
        assert len(record["steps"]) == len(record["test_mse"])
        assert record["final_mse"] == record["test_mse"][-1]
        assert len(record["gradflow"]["grad_h"]) == len(record["gradflow"]["grad_c"]) == 6 + 1
    medians = [row["median_final_mse"] for row in results["summary"]]
    assert medians == sorted(medians), "summary not sorted by median final MSE"
    assert {row["variant"] for row in results["summary"]} == {"NP", "V", "NFG"}


@pytest.mark.parametrize("argv, message", [
    (["--task", "parity"], "invalid choice"),
    (["--variants", "V,XYZ"], "XYZ"),
    (["--variants", ""], "--variants"),
    (["--seq-len", "1"], "must be >= 2"),
    (["--steps", "0"], "must be >= 1"),
    (["--seeds", "two"], "expected an integer"),
    (["--lr", "-0.1"], "must be a finite number > 0"),
    (["--lr", "nan"], "must be a finite number > 0"),
    (["--workers", "0"], "must be >= 1"),
    (["--beta2", "1"], "must be in [0, 1)"),
    (["--batch-size", "1.5"], "expected an integer"),
])
def test_bad_argument_exits_2(argv, message):
    proc = subprocess.run([sys.executable, "-m", "npylstm.study", *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (argv, proc.returncode, proc.stderr)
    assert "usage:" in proc.stderr and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_config_is_a_value_error():
    for bad, match in [(dict(task="parity"), "task"), (dict(variants=("V", "Q")), "variants"),
                       (dict(seeds=0), "seeds"), (dict(lr=0.0), "lr"), (dict(workers=0), "workers"),
                       (dict(beta2=1.0), "beta2"), (dict(beta2=-0.1), "beta2")]:
        with pytest.raises(ValueError, match=match):
            run_study(tiny(**bad))


def test_a_run_that_raises_is_reported_and_the_others_go_on(monkeypatch):
    real = study.train_run

    def broken(config, variant, seed):
        if seed == 1:
            raise FloatingPointError("broken on purpose")
        return real(config, variant, seed)

    monkeypatch.setattr(study, "train_run", broken)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = run_study(tiny(seeds=3), executor=pool)
    runs = results["runs"]["NP"]
    assert [r["failed"] for r in runs] == [False, True, False]
    assert runs[1]["error"] == "FloatingPointError: broken on purpose"
    assert "broken on purpose" in runs[1]["traceback"]
    assert runs[0]["final_mse"] is not None and runs[2]["final_mse"] is not None
    assert results["summary"][0]["failed"] == 1
    assert "1 FAILED" in study.format_table(results)
    json.dumps(results, allow_nan=False)                 # still plain JSON


def test_same_results_through_any_executor():
    """Runs are deterministic: a thread pool and the default process pool agree."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        threads = run_study(tiny(), executor=pool)
    processes = run_study(tiny(workers=2))
    for results in (threads, processes):        # a failed run has an empty curve: equal, and wrong
        runs = results["runs"]["NP"]
        assert [r["seed"] for r in runs] == [0, 1]
        assert not any(r["failed"] for r in runs), [r["error"] for r in runs]
        assert all(len(r["test_mse"]) == len(r["steps"]) >= 2 for r in runs)
    # Exact across processes on purpose: the same code on the same machine and libraries,
    # each run with one BLAS thread (study.train_run), does the same arithmetic.
    for a, b in zip(threads["runs"]["NP"], processes["runs"]["NP"]):
        assert a["test_mse"] == b["test_mse"], "learning curves differ between executors"


def test_gates_come_from_the_workers_weights_without_training_again(tmp_path, monkeypatch):
    """The standard variant's trained weights come back from the worker
    processes, outside results.json, and gates.png is drawn from them."""
    results, weights = study._run_study(tiny(workers=2), None)
    assert sorted(weights) == [0, 1]
    assert all("weights" not in r for r in results["runs"]["NP"])
    json.dumps(results, allow_nan=False)
    # Exact across processes on purpose, as in test_same_results_through_any_executor.
    with study._one_blas_thread():
        _, model = study.train_model(tiny(), "NP", 1)
    for name, value in model.state_dict().items():
        assert np.array_equal(weights[1][name], value), name

    def no_training(*args):
        raise AssertionError("gates.png trained the run again")
    monkeypatch.setattr(study, "train_model", no_training)
    assert study.plot_standard_gates(results, tmp_path / "gates.png", weights)
    assert (tmp_path / "gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.reference
def test_dask_distributed_executor():
    import distributed
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        results = run_study(tiny(), executor=client.get_executor())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        expected = run_study(tiny(), executor=pool)
    assert [r["failed"] for r in results["runs"]["NP"]] == [False, False]
    assert [r["failed"] for r in expected["runs"]["NP"]] == [False, False]
    assert all(len(r["test_mse"]) >= 2 for r in results["runs"]["NP"])
    for a, b in zip(results["runs"]["NP"], expected["runs"]["NP"]):
        assert a["test_mse"] == b["test_mse"], "dask's runs differ from the thread pool's"


@pytest.mark.parametrize("variant", ["NP", "V", "NFG", "NOAF", "CIFG"])
def test_gradient_flow_at_t0_is_lstm_backward_grad_of_the_initial_state(variant):
    """The unrolled plain cell gives at t = 0 what LSTM.backward returns as grad_h0, grad_c0."""
    T, N, H = 7, 5, 4
    model = npylstm.model.LSTMRegressor(2, H, 1, dtype=np.float64, rng=0)
    model.lstm = npylstm.LSTM(2, H, dtype=np.float64, rng=1, **study.VARIANTS[variant])
    x, y = npylstm.tasks.adding_problem(N, T, rng=1, dtype=np.float64)
    norms_h, norms_c = study.gradient_flow(model, x, y)
    assert norms_h.shape == norms_c.shape == (T + 1,)
    pred = model(x)
    _, (grad_h0, grad_c0) = model.lstm.backward(
        None, (model.linear.backward(2 * (pred - y))[None], np.zeros((1, N, H))))
    np.testing.assert_allclose(norms_h[0], np.linalg.norm(grad_h0[0], axis=1).mean(), rtol=1e-10,
                               err_msg="||dLoss/dh_0||")
    np.testing.assert_allclose(norms_c[0], np.linalg.norm(grad_c0[0], axis=1).mean(), rtol=1e-10,
                               err_msg="||dLoss/dc_0||")
    readout = np.linalg.norm(2 * (pred - y) @ model.linear.weight.data, axis=1).mean()
    np.testing.assert_allclose(norms_h[T], readout, rtol=1e-10, err_msg="||dLoss/dh_T||")
    assert norms_c[T] == 0


@pytest.mark.parametrize("task, inputs", [("adding", 2), ("continual", 3), ("sine", 1)])
def test_every_task_runs_with_variants(task, inputs):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = run_study(tiny(task=task, variants=("V", "CIFG"), seeds=1), executor=pool)
    assert results["task"]["name"] == task
    for variant in ("V", "CIFG"):
        record = results["runs"][variant][0]
        assert not record["failed"], record["error"]
        assert np.isfinite(record["final_mse"]) and record["final_mse"] > 0
        assert np.all(np.isfinite(record["gradflow"]["grad_h"]))
    model = study.make_model(tiny(task=task), "V", 0)
    assert model.lstm.input_size == inputs and model.lstm.peephole


def test_variants_share_their_start():
    """For one seed, V and NP start from the same weights (V adds only the peepholes)."""
    v, np_ = study.make_model(tiny(), "V", 3).state_dict(), study.make_model(tiny(), "NP", 3).state_dict()
    assert set(v) - set(np_) == {"lstm.weight_ci_l0", "lstm.weight_cf_l0", "lstm.weight_co_l0"}
    for name in np_:
        np.testing.assert_array_equal(v[name], np_[name], err_msg=name)


@pytest.mark.parametrize("occupied, failing, reason", [
    ("file", "file/study", "Not a directory"),                  # the folder cannot be made
    ("study/results.json/", "study/results.json", "Is a directory"),  # the file cannot replace it
])
def test_a_failed_write_exits_1_in_one_line(occupied, failing, reason, tmp_path):
    if occupied.endswith("/"):
        (tmp_path / occupied).mkdir(parents=True)
    else:
        (tmp_path / occupied).write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "npylstm.study", "--variants", "NP", "--seeds", "1", "--steps", "1",
         "--seq-len", "4", "--hidden-size", "2", "--batch-size", "4", "--workers", "1", "--quiet",
         "--no-plots", "--out", failing.split("/results.json")[0]],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"python -m npylstm.study: error: cannot write {failing}: {reason}\n"
