"""python -m npylstm.charlm train | sample: outputs, exact resume, sampling, argument and
checkpoint errors. A tiny model on a tiny text, mostly in-process through main(argv)."""
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from npylstm.charlm.__main__ import main
from npylstm.charlm.sampling import sample
from npylstm.charlm.train import CharLMConfig, learning_rate, load_charlm, train_charlm

TEXT = "".join(f"def f{i}(x):\n    return x + {i % 7}  # é\n\n" for i in range(120))
TINY = ["--hidden-size", "8", "--embedding-dim", "4", "--seq-len", "8", "--batch-size", "3",
        "--log-every", "2", "--eval-every", "4", "--eval-chars", "60", "--sample-chars", "20"]


def run_main(argv, capsys):
    """(status, stdout, stderr) of main(argv); argparse's exit becomes a status."""
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error_line(err, *needles):
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run: (folder, text file)."""
    folder = tmp_path_factory.mktemp("charlm")
    text = folder / "tiny.txt"
    text.write_text(TEXT, encoding="utf-8")
    assert main(["train", "--text", str(text), *TINY, "--steps", "12", "--quiet",
                 "--out", str(folder / "run")]) == 0
    return folder / "run", text


def test_train_writes_the_files_and_the_metrics(run):
    out, text = run
    assert sorted(os.listdir(out)) == ["loss.png", "metrics.json", "model.npz", "samples.txt"]
    with open(out / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    m = json.loads((out / "metrics.json").read_text())
    for key in ("config", "corpus", "steps", "train_loss", "valid_bpc", "final_valid_bpc",
                "chars_per_second", "train_seconds"):
        assert key in m, key
    # The corpus as trained on: the file as it is, é included.
    assert m["corpus"] == {"name": "tiny.txt", "chars": len(TEXT),
                           "sha256": hashlib.sha256(TEXT.encode("utf-8")).hexdigest(),
                           "vocab_size": len(set(TEXT))}
    assert m["steps"] == 12 and m["config"]["steps"] == 12 and m["config"]["hidden_size"] == 8
    assert [e["step"] for e in m["train_loss"]] == [2, 4, 6, 8, 10, 12]
    assert [e["step"] for e in m["valid_bpc"]] == [4, 8, 12]
    # An untrained model over V characters is near log2(V) bits; 12 steps cannot be far off.
    V = len(set(TEXT))
    for e in m["valid_bpc"]:
        assert 0 < e["bpc"] < 2 * math.log2(V)
    assert all(0 < e["loss"] < 2 * math.log(V) for e in m["train_loss"])
    assert 0 < m["final_valid_bpc"] < 2 * math.log2(V)
    assert m["chars_per_second"] > 0 and m["train_seconds"] > 0
    assert m["chars_trained"] == 12 * 8 * 3
    # The whole held-out part (the last 5 %) in 3 streams; each stream's first character
    # has no prediction.
    held_out = round(len(TEXT) * 0.05)
    assert m["split"]["valid_chars"] == held_out
    assert m["final_valid_chars"] == (held_out // 3 - 1) * 3
    # samples.txt: one sample per evaluation, under a header naming its step.
    samples = (out / "samples.txt").read_text(encoding="utf-8")
    assert [line.split()[2] for line in samples.splitlines() if line.startswith("==== step")] \
        == ["4", "8", "12"]


def test_the_checkpoint_loads_without_pickle(run):
    out, _ = run
    with np.load(out / "model.npz", allow_pickle=False) as f:
        names = set(f.files)
        assert int(f["epoch"]) == 12 and f["losses"].shape == (12,)
        assert f["extra/state_h"].shape == (1, 3, 8)            # (L, B, H): the carried state
    assert {"model/embedding.weight", "model/lstm.weight_ih_l0", "model/linear.bias",
            "extra/vocab", "config"} <= names
    model, vocab, config = load_charlm(out / "model.npz")
    assert vocab.chars == "".join(sorted(set(TEXT))) and config.hidden_size == 8


def test_progress_lines(run, capsys, tmp_path):
    _, text = run
    status, out, err = run_main(["train", "--text", str(text), *TINY, "--steps", "4",
                                 "--no-plots", "--out", str(tmp_path)], capsys)
    assert status == 0 and err == ""
    lines = [line for line in out.splitlines() if line.startswith("step")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]
    for word in ("loss", "valid", "bits/char", "chars/s", "left"):
        assert word in lines[-1], lines[-1]
    assert "final valid:" in out


def test_resume_equals_a_straight_run(run, capsys, tmp_path):
    # Two layers with dropout, so the dropout generator's state must be restored too.
    _, text = run
    common = ["train", "--text", str(text), *TINY, "--num-layers", "2", "--dropout", "0.3",
              "--quiet", "--no-plots"]
    assert main([*common, "--steps", "14", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--steps", "7", "--out", str(tmp_path / "split")]) == 0
    # settings not given again come from the checkpoint
    status, _, err = run_main(["train", "--resume", str(tmp_path / "split" / "model.npz"),
                               "--steps", "14", "--quiet", "--no-plots", "--log-every", "2",
                               "--eval-every", "4", "--eval-chars", "60", "--sample-chars", "20",
                               "--out", str(tmp_path / "split")], capsys)
    assert status == 0, err
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "split" / "metrics.json").read_text())
    for key in ("config", "corpus", "steps", "train_loss", "valid_bpc", "final_valid_bpc"):
        assert resumed[key] == straight[key], key          # one process: exactly
    with np.load(tmp_path / "straight" / "model.npz") as a, \
            np.load(tmp_path / "split" / "model.npz") as b:
        np.testing.assert_array_equal(a["losses"], b["losses"])
        for name in a.files:
            if name.startswith(("model/", "optim/", "extra/state")):
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (tmp_path / "split" / "samples.txt").read_text() == \
        (tmp_path / "straight" / "samples.txt").read_text()


def test_resume_refuses_another_config_or_text(run, capsys, tmp_path):
    out, text = run
    status, _, err = run_main(["train", "--resume", str(out / "model.npz"), "--hidden-size", "9",
                               "--steps", "20", "--out", str(tmp_path)], capsys)
    assert status == 1
    assert_one_error_line(err, "model.npz", "hidden_size=8", "hidden_size=9")
    other = tmp_path / "other.txt"
    other.write_text(TEXT.replace("return", "yield"), encoding="utf-8")
    status, _, err = run_main(["train", "--resume", str(out / "model.npz"), "--text", str(other),
                               "--steps", "20", "--out", str(tmp_path)], capsys)
    assert status == 1
    assert_one_error_line(err, "model.npz", "another text", "other.txt")
    status, _, err = run_main(["train", "--resume", str(out / "model.npz"), "--steps", "10",
                               "--out", str(tmp_path)], capsys)
    assert status == 1
    assert_one_error_line(err, "already at step 12")


def test_sample_gives_the_prime_and_exactly_n_characters(run, capsys):
    out, _ = run
    ckpt = str(out / "model.npz")
    texts = []
    for seed in (3, 3, 4):
        status, stdout, err = run_main(["sample", ckpt, "--length", "57", "--prime", "def f",
                                        "--seed", str(seed)], capsys)
        assert status == 0 and err == ""
        assert stdout.endswith("\n")
        texts.append(stdout[:-1])                     # print's newline is not a sampled character
    assert all(t.startswith("def f") and len(t) == 5 + 57 for t in texts)
    assert texts[0] == texts[1]                       # the same seed, the same text
    assert texts[0] != texts[2]
    assert set(texts[0]) <= set(TEXT)
    status, stdout, _ = run_main(["sample", ckpt, "--length", "0", "--prime", "x"], capsys)
    assert status == 0 and stdout == "x\n"
    status, stdout, _ = run_main(["sample", ckpt, "--length", "40", "--temperature", "0.5"],
                                 capsys)
    assert status == 0 and len(stdout) == 41          # no prime: 40 characters


def test_sample_function(run):
    out, _ = run
    model, vocab, _ = load_charlm(out / "model.npz")
    text = sample(model, vocab, 100, temperature=1e-4, prime="def", seed=0)
    assert len(text) == 103
    assert text == sample(model, vocab, 100, temperature=1e-4, prime="def", seed=1)  # ~argmax
    with pytest.raises(ValueError, match="temperature"):
        sample(model, vocab, 5, temperature=0.0)
    with pytest.raises(ValueError, match="'Z'"):
        sample(model, vocab, 5, prime="Zdef")


def test_python_dash_m(run, tmp_path):
    out, _ = run
    proc = subprocess.run([sys.executable, "-m", "npylstm.charlm", "sample", str(out / "model.npz"),
                           "--length", "25", "--prime", "re"], capture_output=True, text=True,
                          encoding="utf-8", timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("re") and len(proc.stdout) == 2 + 25 + 1
    proc = subprocess.run([sys.executable, "-m", "npylstm.charlm", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and "train" in proc.stdout and "sample" in proc.stdout


@pytest.mark.parametrize("args, needle", [
    ([], "required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["train", "--steps", "0"], "--steps"),
    (["train", "--hidden-size", "0"], "--hidden-size"),
    (["train", "--num-layers", "-1"], "--num-layers"),
    (["train", "--seq-len", "x"], "--seq-len"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--clip", "-1"], "--clip"),
    (["train", "--dropout", "1"], "--dropout"),
    (["train", "--dtype", "float16"], "--dtype"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--no-such-option"], "unrecognized arguments"),
    (["sample"], "CHECKPOINT"),
    (["sample", "m.npz", "--temperature", "0"], "--temperature"),
    (["sample", "m.npz", "--temperature", "-0.5"], "--temperature"),
    (["sample", "m.npz", "--length", "-1"], "--length"),
])
def test_invalid_arguments_exit_2(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_main(args, capsys)
    assert status == 2
    assert err.startswith("usage:") and "Traceback" not in err
    assert needle in err.splitlines()[-1]
    assert not (tmp_path / "runs").exists()


def test_bad_text_files_exit_2_naming_them(run, capsys, tmp_path):
    _, text = run
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    for name, problem in [("missing.txt", "cannot read"), ("latin1.txt", "not UTF-8"),
                          (".", "cannot read")]:
        status, _, err = run_main(["train", "--text", str(tmp_path / name), "--out",
                                   str(tmp_path / "out")], capsys)
        assert status == 2, err
        assert err.startswith("usage:")
        assert_one_error_line(err, "--text", name, problem)
    # A text too short for the streams is an argument error too.
    status, _, err = run_main(["train", "--text", str(text), "--batch-size", "1000",
                               "--out", str(tmp_path / "out")], capsys)
    assert status == 2
    assert_one_error_line(err, "--batch-size", "1000")


def test_a_prime_outside_the_vocabulary_exits_2_naming_it(run, capsys):
    out, _ = run
    status, stdout, err = run_main(["sample", str(out / "model.npz"), "--prime", "def Q~"], capsys)
    assert status == 2 and stdout == ""
    assert_one_error_line(err, "--prime", "'Q'", "'~'")


@pytest.fixture(scope="module")
def bad_checkpoints(run, tmp_path_factory):
    out, _ = run
    folder = tmp_path_factory.mktemp("bad")
    data = (out / "model.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(data[:len(data) // 2])
    (folder / "text.npz").write_text("hello, not a checkpoint\n")
    np.savez(folder / "foreign.npz", weights=np.ones(3))
    from npylstm.train import TrainConfig, train, write_outputs    # the sine experiment's
    write_outputs(train(TrainConfig(num_points=60, seq_len=5, hidden_size=3, epochs=1,
                                    log_every=0)), str(folder), plots=False)
    return folder


@pytest.mark.parametrize("name, problem", [
    ("missing.npz", "no such file"),
    ("truncated.npz", "not a readable"),
    ("text.npz", "not an .npz archive"),
    ("foreign.npz", "not an npylstm checkpoint"),
    ("model.npz", "not a character-model checkpoint"),      # the sine experiment's
])
@pytest.mark.parametrize("command", ["sample", "train"])
def test_bad_checkpoints_exit_1_in_one_line(bad_checkpoints, name, problem, command, capsys):
    path = str(bad_checkpoints / name)
    argv = ["sample", path] if command == "sample" else ["train", "--resume", path]
    status, stdout, err = run_main(argv, capsys)
    assert status == 1 and stdout == ""
    assert len(err.strip().splitlines()) == 1, err
    assert_one_error_line(err, name, problem)


def test_train_charlm_writes_no_files(run, tmp_path, monkeypatch):
    _, text = run
    monkeypatch.chdir(tmp_path)
    seen = []
    cfg = CharLMConfig(text=str(text), hidden_size=6, embedding_dim=3, seq_len=5, batch_size=2,
                       steps=6, log_every=3, eval_every=3, eval_chars=40, sample_chars=0)
    result = train_charlm(cfg, progress=seen.append)
    assert os.listdir(tmp_path) == []
    assert result.steps == 6 and len(result.losses) == 6 and result.samples == []
    assert [p.step for p in seen] == [3, 6] and seen[-1].seconds_left == 0
    assert [v["step"] for v in result.valid] == [3, 6]
    assert result.state[0].shape == (1, 2, 6)


def test_the_learning_rate_halves_every_half_life():
    cfg = CharLMConfig(lr=0.004, lr_half_life=100)
    assert learning_rate(cfg, 1) == 0.004
    assert learning_rate(cfg, 101) == pytest.approx(0.002, rel=1e-12)
    assert learning_rate(cfg, 301) == pytest.approx(0.0005, rel=1e-12)
    assert learning_rate(CharLMConfig(lr=0.004, lr_half_life=0), 10**6) == 0.004


def test_the_sampling_step_is_the_model_step():
    # next_step (one character, LSTM cells directly) against CharLM.forward over a sequence
    # in float64: the same sums in another order, so round-off apart.
    from npylstm.charlm import CharLM
    from npylstm.charlm.sampling import next_step
    from npylstm.module import no_grad
    model = CharLM(11, hidden_size=7, num_layers=2, embedding_dim=5, dtype=np.float64, rng=0)
    model.eval()
    ids = np.random.default_rng(1).integers(0, 11, (6, 3))
    with no_grad():
        logits, (h_n, c_n) = model(ids)
        state = (np.zeros((2, 3, 7)), np.zeros((2, 3, 7)))
        for t in range(6):
            step_logits, state = next_step(model, ids[t], state)
            np.testing.assert_allclose(step_logits[0], logits[t], rtol=0, atol=1e-12)
    np.testing.assert_allclose(state[0], h_n, rtol=0, atol=1e-12)
    np.testing.assert_allclose(state[1], c_n, rtol=0, atol=1e-12)
