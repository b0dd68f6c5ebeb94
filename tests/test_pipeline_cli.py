"""python -m npylstm.train: outputs, --help, argument errors, resuming, bad checkpoints."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from npylstm.train import main

TINY = ["--hidden-size", "4", "--num-points", "120", "--seq-len", "10", "--log-every", "1"]


def run_cli(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "npylstm.train", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    return proc


def assert_clean_error(proc, *needles, status=None):
    """Non-zero exit, one error line naming what it should, and no traceback."""
    assert proc.returncode != 0, proc.stdout
    if status is not None:
        assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def assert_png(path, min_size=(300, 400)):
    from matplotlib.image import imread

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], \
        f"{path}: {image.shape}"
    assert image[..., :3].std() > 0.05, f"{path} is blank"


def test_a_short_run_writes_every_output(tmp_path):
    proc = run_cli(*TINY, "--epochs", "3", "--forecast", "7", "--plot-gates", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert [line[:15] for line in lines[:3]] == ["[Epoch   1/  3]", "[Epoch   2/  3]",
                                                  "[Epoch   3/  3]"]
    assert lines[0].startswith("[Epoch   1/  3] loss: ")
    out = tmp_path / "runs" / "sine"                      # the default --out, under the cwd
    for label in ("final loss:", "valid loss:", "forecast loss:", "training time:"):
        assert any(line.startswith(label) for line in lines), (label, proc.stdout)
    assert sorted(os.listdir(out)) == ["gates.png", "loss.png", "metrics.json", "model.npz",
                                       "prediction.png"]

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("config", "losses", "final_loss", "valid_loss", "train_seconds"):
        assert key in metrics, key
    assert len(metrics["losses"]) == 3 and metrics["final_loss"] == metrics["losses"][-1]
    assert metrics["config"]["hidden_size"] == 4 and metrics["config"]["seq_len"] == 10
    assert np.isfinite(metrics["valid_loss"]) and metrics["train_seconds"] > 0
    assert metrics["forecast"]["steps"] == 7 and len(metrics["forecast"]["predictions"]) == 7
    assert np.isfinite(metrics["forecast"]["mse"])
    for name in ("loss.png", "prediction.png", "gates.png"):
        assert_png(out / name)
    with np.load(out / "model.npz", allow_pickle=False) as f:
        assert int(f["epoch"]) == 3 and "model/lstm.weight_hh_l0" in f.files


def test_quiet_and_no_plots(tmp_path):
    proc = run_cli(*TINY, "--epochs", "2", "--quiet", "--no-plots", "--out", "here", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert sorted(os.listdir(tmp_path / "here")) == ["metrics.json", "model.npz"]


def test_help(tmp_path):
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for option in ("--epochs", "--hidden-size", "--seq-len", "--lr", "--seed", "--dtype", "--out",
                   "--resume", "--no-plots", "--batch-size", "--num-layers", "--clip",
                   "--forecast", "--log-every", "--quiet"):
        assert option in proc.stdout, option


def test_invalid_argument_in_a_subprocess(tmp_path):
    proc = run_cli("--epochs", "0", cwd=tmp_path)
    assert_clean_error(proc, "--epochs", status=2)
    assert proc.stderr.startswith("usage:")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, needle", [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-5"], "--epochs"),
    (["--epochs", "ten"], "--epochs"),
    (["--hidden-size", "0"], "--hidden-size"),
    (["--num-layers", "0"], "--num-layers"),
    (["--seq-len", "0"], "--seq-len"),
    (["--seq-len", "490"], "--seq-len"),              # 10 windows, all for validation
    (["--num-points", "50", "--seq-len", "45"], "--seq-len"),
    (["--num-valid", "0"], "--num-valid"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.01"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--batch-size", "0"], "--batch-size"),
    (["--clip", "0"], "--clip"),
    (["--period", "0"], "--period"),
    (["--dtype", "float16"], "--dtype"),
    (["--seed", "-1"], "--seed"),
    (["--forecast", "-1"], "--forecast"),
    (["--log-every", "-1"], "--log-every"),
])
def test_invalid_arguments_exit_2(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and "Traceback" not in err
    assert err.splitlines()[-1].startswith("python -m npylstm.train: error: argument")
    assert needle in err.splitlines()[-1]
    assert not (tmp_path / "runs").exists()


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-such-option"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_resume_equals_an_uninterrupted_run(tmp_path):
    common = [*TINY, "--batch-size", "32", "--quiet", "--no-plots"]
    assert run_cli(*common, "--epochs", "10", "--out", "straight", cwd=tmp_path).returncode == 0
    assert run_cli(*common, "--epochs", "5", "--out", "split", cwd=tmp_path).returncode == 0
    # settings not given again come from the checkpoint
    proc = run_cli("--resume", "split/model.npz", "--epochs", "10", "--out", "split",
                   "--quiet", "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert len(resumed["losses"]) == 10
    # Three processes, read back through JSON: a round-off tolerance, though on one machine the
    # runs do the same arithmetic (a different one would show in float32 at 1e-7, not 1e-12).
    np.testing.assert_allclose(resumed["losses"], straight["losses"], rtol=1e-12)
    assert resumed["valid_loss"] == pytest.approx(straight["valid_loss"], rel=1e-12)
    assert resumed["config"] == straight["config"]


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    good = folder / "good"
    assert run_cli(*TINY, "--epochs", "2", "--quiet", "--no-plots", "--out", str(good),
                   cwd=folder).returncode == 0
    data = (good / "model.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(data[:len(data) // 2])
    (folder / "text.npz").write_text("hello, not a checkpoint\n")
    (folder / "empty.npz").write_bytes(b"")
    np.savez(folder / "pickled.npz", config=np.array([{"a": 1}], dtype=object))
    np.savez(folder / "foreign.npz", weights=np.ones(3))
    np.save(folder / "array.npy", np.ones(3))
    return folder


@pytest.mark.parametrize("name, problem", [
    ("missing.npz", "no such file"),
    ("truncated.npz", "not a readable"),
    ("text.npz", "not an .npz archive"),
    ("empty.npz", "is empty"),
    ("pickled.npz", "pickled objects"),
    ("foreign.npz", "not an npylstm checkpoint"),
    ("array.npy", "not an .npz archive"),
])
def test_bad_checkpoints_give_one_clear_line(bad_checkpoints, name, problem):
    proc = run_cli("--resume", name, "--quiet", cwd=bad_checkpoints)
    assert_clean_error(proc, name, problem)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_checkpoint_of_another_model_is_refused(bad_checkpoints):
    proc = run_cli("--resume", "good/model.npz", "--hidden-size", "5", "--quiet",
                   cwd=bad_checkpoints)
    assert_clean_error(proc, "good/model.npz", "hidden_size=4", "hidden_size=5")


def test_pipeline_modules_do_not_import_matplotlib():
    code = ("import sys, npylstm, npylstm.data, npylstm.model, npylstm.train, npylstm.checkpoint, "
            "npylstm.plots; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'matplotlib')); assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_an_output_folder_that_cannot_be_made_exits_1_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run_cli(*TINY, "--epochs", "1", "--quiet", "--out", "file/run", cwd=tmp_path)
    assert_clean_error(proc, status=1)
    assert proc.stderr == ("python -m npylstm.train: error: cannot write file/run: "
                           "Not a directory\n")


def test_a_file_that_cannot_be_written_exits_1_in_one_line(tmp_path):
    (tmp_path / "run" / "metrics.json").mkdir(parents=True)     # os.replace cannot replace it
    proc = run_cli(*TINY, "--epochs", "1", "--quiet", "--out", "run", cwd=tmp_path)
    assert_clean_error(proc, status=1)
    assert proc.stderr == ("python -m npylstm.train: error: cannot write "
                           f"{os.path.join('run', 'metrics.json')}: Is a directory\n")
