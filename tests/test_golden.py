"""Golden vectors: python -m npylstm.golden write / check.

The bundle's values are tied to torch (the same configuration run in
torch.nn.LSTM gives them to 1e-12), and ``check`` is tested on a clean
result, a perturbed one, a float32 port, and on malformed folders.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import npylstm
from npylstm import golden

pytestmark = pytest.mark.reference

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "npylstm.golden", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def check(bundle, results):
    """check_bundle's status and printed lines."""
    lines = []
    status = golden.check_bundle(bundle, results, out=lines.append)
    return status, lines


def write(directory, **options):
    return golden.write_bundle(directory, golden.GoldenConfig(**options))


def load(bundle):
    """{name: array} of every array of a bundle, through its manifest."""
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    return {e["name"]: golden.read_array(Path(bundle) / e["file"]) for e in manifest["arrays"]}


def copy_results(bundle, results, change=None):
    """Save a bundle's output and gradient arrays as a port's results, after ``change``."""
    results.mkdir(exist_ok=True)
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    for e in manifest["arrays"]:
        if e["role"] in ("output", "gradient"):
            value = golden.read_array(Path(bundle) / e["file"])
            if change:
                value = change(e["name"], value)
            np.save(results / (e["name"] + ".npy"), value)


def test_cli_writes_a_small_bundle_that_checks_clean_against_itself(tmp_path):
    written = cli("write", tmp_path / "g")
    assert written.returncode == 0, written.stderr
    size = sum(p.stat().st_size for p in (tmp_path / "g").iterdir())
    assert size < 16_000, f"the default bundle should be a few KB, it is {size} bytes"
    checked = cli("check", tmp_path / "g", tmp_path / "g")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "OK: all 10 arrays within tolerance"
    assert "grad_weight_ih_l0  max abs  0.00e+00  max rel  0.00e+00  ok" in checked.stdout


def test_the_manifest_describes_every_array(tmp_path):
    manifest = write(tmp_path, num_layers=2, bidirectional=True, lengths=True)
    arrays = manifest["arrays"]
    roles = {e["role"] for e in arrays}
    assert roles == {"input", "weight", "initial state", "upstream gradient", "output", "gradient"}
    for e in arrays:
        assert {"name", "file", "shape", "dtype", "role"} <= set(e), e
        assert (tmp_path / e["file"]).is_file(), e["file"]
        assert list(np.load(tmp_path / e["file"]).shape) == e["shape"], e["name"]
        assert ("rtol" in e) == (e["role"] in ("output", "gradient")), e["name"]
    names = {e["name"] for e in arrays}
    lstm = npylstm.LSTM(3, 4, num_layers=2, bidirectional=True)
    for name, _ in lstm.named_parameters():      # every weight and its gradient, torch's names
        assert name in names and "grad_" + name in names, name
    assert manifest["gate_order"].startswith("(i, f, g, o)")
    assert "why" in manifest["tolerance"]
    assert "docs/lstm.md" in manifest["equations"]
    assert (ROOT / "docs" / "lstm.md").is_file()


def torch_run(arrays, config):
    """The bundle's configuration in float64 torch: outputs and every gradient."""
    lstm = torch.nn.LSTM(config.input_size, config.hidden_size, config.num_layers,
                         bidirectional=config.bidirectional, proj_size=config.proj_size).double()
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            p.copy_(torch.from_numpy(arrays[name].astype(np.float64)))
    leaf = lambda name: torch.tensor(arrays[name].astype(np.float64), requires_grad=True)
    x, h_0, c_0 = leaf("input"), leaf("h_0"), leaf("c_0")
    if "lengths" in arrays:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(arrays["lengths"]),
                                                         enforce_sorted=False)
        out, (h_n, c_n) = lstm(packed, (h_0, c_0))
        output, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=config.seq_len)
    else:
        output, (h_n, c_n) = lstm(x, (h_0, c_0))
    up = lambda name: torch.from_numpy(arrays[name].astype(np.float64))
    loss = ((output * up("upstream_output")).sum() + (h_n * up("upstream_h_n")).sum()
            + (c_n * up("upstream_c_n")).sum())
    loss.backward()
    values = {"output": output, "h_n": h_n, "c_n": c_n, "grad_input": x.grad,
              "grad_h_0": h_0.grad, "grad_c_0": c_0.grad}
    values.update({"grad_" + name: p.grad for name, p in lstm.named_parameters()})
    return {k: v.detach().numpy() for k, v in values.items()}


CONFIGS = {
    "default": dict(),
    "two bidirectional layers with projection": dict(num_layers=2, bidirectional=True,
                                                     hidden_size=5, proj_size=3),
    "lengths": dict(lengths=True, batch=4, seq_len=6),
}


@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_the_bundle_equals_torch_for_the_same_configuration(options):
    config = golden.GoldenConfig(**options)
    manifest, arrays = golden.make_bundle(config)
    expected = torch_run(arrays, config)
    checked = [e["name"] for e in manifest["arrays"] if e["role"] in ("output", "gradient")]
    assert sorted(checked) == sorted(expected)
    for name in checked:
        err = np.max(np.abs(arrays[name] - expected[name])) / np.max(np.abs(expected[name]))
        assert err < 1e-12, f"{name}: bundle vs torch differ, relative error {err:.1e}"


def test_one_array_beyond_tolerance_fails_and_is_named(tmp_path):
    write(tmp_path / "g")

    def nudge(name, value, by):
        if name == "grad_weight_hh_l0":
            value = value.copy()
            value[3, 1] += by
        return value

    copy_results(tmp_path / "g", tmp_path / "close", lambda n, v: nudge(n, v, 1e-13))
    assert check(tmp_path / "g", tmp_path / "close")[0] == 0        # round-off is fine

    copy_results(tmp_path / "g", tmp_path / "off", lambda n, v: nudge(n, v, 1e-6))
    status, lines = check(tmp_path / "g", tmp_path / "off")
    assert status == 1
    assert lines[-1].startswith("FAIL: 1 of 10 arrays beyond tolerance: grad_weight_hh_l0 "
                                "(max abs 1.00e-06")
    assert [line.split()[0] for line in lines if line.endswith("BEYOND TOLERANCE")] == [
        "grad_weight_hh_l0"]

    copy_results(tmp_path / "g", tmp_path / "nan", lambda n, v: v * np.nan if n == "c_n" else v)
    status, lines = check(tmp_path / "g", tmp_path / "nan")
    assert status == 1 and "c_n (max abs inf" in lines[-1]


def test_a_float32_port_passes_the_float32_bundle_and_not_the_float64_one(tmp_path):
    """npylstm in float32 plays the port: its round-off fits the float32 tolerance only."""
    for dtype in ("float32", "float64"):
        write(tmp_path / dtype, dtype=dtype, seq_len=8)
        arrays = load(tmp_path / dtype)
        lstm = npylstm.LSTM(3, 4, dtype=np.float32)
        lstm.load_state_dict({name: arrays[name] for name, _ in lstm.named_parameters()})
        output, (h_n, c_n) = lstm(arrays["input"], (arrays["h_0"], arrays["c_0"]))
        grad_input, (grad_h_0, grad_c_0) = lstm.backward(
            arrays["upstream_output"], (arrays["upstream_h_n"], arrays["upstream_c_n"]))
        results = tmp_path / f"port_{dtype}"
        results.mkdir()
        port = dict(output=output, h_n=h_n, c_n=c_n, grad_input=grad_input, grad_h_0=grad_h_0,
                    grad_c_0=grad_c_0, **{"grad_" + n: p.grad for n, p in lstm.named_parameters()})
        for name, value in port.items():
            np.save(results / f"{name}.npy", value)
        status, lines = check(tmp_path / dtype, results)
        assert status == (0 if dtype == "float32" else 1), "\n".join(lines)


def test_the_json_form_round_trips(tmp_path):
    write(tmp_path / "npy", lengths=True)
    write(tmp_path / "json", lengths=True, format="json")
    from_npy, from_json = load(tmp_path / "npy"), load(tmp_path / "json")
    assert sorted(from_npy) == sorted(from_json)
    for name in from_npy:
        assert np.array_equal(from_json[name], from_npy[name]), f"{name} changed through JSON"
    assert check(tmp_path / "json", tmp_path / "npy") == check(tmp_path / "npy", tmp_path / "npy")
    assert check(tmp_path / "npy", tmp_path / "json")[0] == 0
    # a port may also write one flat list in C order
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in from_npy:
        (flat / f"{name}.json").write_text(json.dumps(from_npy[name].ravel().tolist()))
    assert check(tmp_path / "npy", flat)[0] == 0


def test_a_missing_result_exits_2_and_names_it(tmp_path):
    write(tmp_path / "g")
    copy_results(tmp_path / "g", tmp_path / "r")
    (tmp_path / "r" / "grad_c_0.npy").unlink()
    status, lines = check(tmp_path / "g", tmp_path / "r")
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith("ERROR:") and "no grad_c_0.npy or grad_c_0.json" in lines[0]


def test_a_wrong_shape_exits_2_and_says_so(tmp_path):
    write(tmp_path / "g")
    copy_results(tmp_path / "g", tmp_path / "r",
                 lambda n, v: v.transpose(1, 0, 2) if n == "output" else v)
    status, lines = check(tmp_path / "g", tmp_path / "r")
    assert status == 2
    assert lines == [f"ERROR: {tmp_path / 'r' / 'output.npy'}: expected output of shape "
                     f"(5, 2, 4), got (2, 5, 4)"]


def test_a_malformed_bundle_exits_2(tmp_path):
    write(tmp_path / "g")
    (tmp_path / "g" / "h_n.npy").unlink()
    status, lines = check(tmp_path / "g", tmp_path / "g")
    assert status == 2 and "missing h_n.npy" in lines[0]
    status, lines = check(tmp_path, tmp_path)                         # no manifest
    assert status == 2 and "has no manifest.json" in lines[0]
    (tmp_path / "manifest.json").write_text("{not json")
    status, lines = check(tmp_path, tmp_path)
    assert status == 2 and "not a valid manifest" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["write", "g", "--hidden-size", "0"], "argument --hidden-size: must be >= 1, got 0"),
    (["write", "g", "--proj-size", "4"], "--proj-size must be smaller than --hidden-size=4"),
    (["write", "g", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["write", "g", "--seq-len", "two"], "argument --seq-len: expected an integer, got 'two'"),
    (["check", "g"], "the following arguments are required: RESULTS_DIR"),
    (["compare", "g", "r"], "invalid choice: 'compare'"),
])
def test_bad_arguments_exit_2_with_an_argparse_message(args, message, tmp_path):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "g").exists()


def test_check_of_a_missing_results_folder_exits_2_in_one_line(tmp_path):
    write(tmp_path / "g")
    result = cli("check", tmp_path / "g", tmp_path / "nowhere")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stdout.strip().splitlines() == [
        f"ERROR: results folder {tmp_path / 'nowhere'} does not exist"]


@pytest.mark.parametrize("keep", ["inputs only", "no arrays"])
def test_a_check_that_compares_nothing_exits_2_and_says_so(tmp_path, keep):
    """A manifest without output or gradient arrays is an error, never "OK: all 0 arrays"."""
    write(tmp_path / "g")
    copy_results(tmp_path / "g", tmp_path / "r")
    path = tmp_path / "g" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["arrays"] = [e for e in manifest["arrays"]
                          if keep == "inputs only" and e["role"] not in ("output", "gradient")]
    assert manifest["arrays"] or keep == "no arrays"
    path.write_text(json.dumps(manifest))
    result = cli("check", tmp_path / "g", tmp_path / "r")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.strip().splitlines() == [
        f"ERROR: {path} lists no output or gradient arrays, so nothing was compared"]
    assert "Traceback" not in result.stderr


def test_a_peephole_bundle_agrees_with_onnx_and_finite_differences(tmp_path):
    """torch has no peepholes: the forward is checked against ONNX's reference LSTM, and
    the peephole gradients against central differences of the forward."""
    from onnx.reference import ReferenceEvaluator

    from npylstm import interop

    config = golden.GoldenConfig(peephole=True, bidirectional=True)
    manifest, arrays = golden.make_bundle(config)
    names = {e["name"] for e in manifest["arrays"]}
    assert {"weight_ci_l0", "weight_co_l0_reverse", "grad_weight_cf_l0"} <= names

    lstm = npylstm.LSTM(3, 4, bidirectional=True, peephole=True, dtype=np.float64)
    lstm.load_state_dict({name: arrays[name] for name, _ in lstm.named_parameters()})
    path = interop.export_onnx(lstm, tmp_path / "peephole.onnx", initial_state=True)
    onnx_output, onnx_h_n, onnx_c_n = ReferenceEvaluator(str(path)).run(
        None, {"input": arrays["input"], "h0": arrays["h_0"], "c0": arrays["c_0"]})
    for name, value in [("output", onnx_output), ("h_n", onnx_h_n), ("c_n", onnx_c_n)]:
        err = np.max(np.abs(arrays[name] - value))
        assert err < 1e-12, f"{name}: bundle vs onnx.reference differ by {err:.1e}"

    def loss():
        output, (h_n, c_n) = lstm(arrays["input"], (arrays["h_0"], arrays["c_0"]))
        return (np.sum(output * arrays["upstream_output"]) + np.sum(h_n * arrays["upstream_h_n"])
                + np.sum(c_n * arrays["upstream_c_n"]))

    for name in ("weight_ci_l0", "weight_cf_l0", "weight_co_l0_reverse"):
        w = getattr(lstm, name).data
        for j in range(w.size):
            w[j] += 1e-6
            up = loss()
            w[j] -= 2e-6
            down = loss()
            w[j] += 1e-6
            numeric = (up - down) / 2e-6
            assert abs(numeric - arrays["grad_" + name][j]) < 1e-7, f"grad_{name}[{j}]"


def test_cli_options_reach_the_lstm(tmp_path):
    result = cli("write", tmp_path / "g", "--input-size", "2", "--hidden-size", "5",
                 "--num-layers", "2", "--bidirectional", "--proj-size", "3", "--seq-len", "4",
                 "--batch", "3", "--lengths", "--peephole", "--dtype", "float32", "--seed", "7",
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    shapes = {e["name"]: tuple(e["shape"]) for e in manifest["arrays"]}
    assert shapes["input"] == (4, 3, 2) and shapes["lengths"] == (3,)
    assert shapes["output"] == (4, 3, 6)
    assert shapes["h_n"] == (4, 3, 3) and shapes["c_n"] == (4, 3, 5)
    assert shapes["weight_ih_l1_reverse"] == (20, 6) and shapes["weight_hr_l1"] == (3, 5)
    assert shapes["weight_co_l1_reverse"] == (5,)
    assert {e["dtype"] for e in manifest["arrays"] if e["name"] != "lengths"} == {"float32"}
    assert all(e["file"].endswith(".json") for e in manifest["arrays"])
    assert cli("check", tmp_path / "g", tmp_path / "g").returncode == 0


@pytest.mark.parametrize("where", ["parent is a file", "manifest.json is a folder"])
def test_a_failed_write_exits_1_in_one_line(where, tmp_path):
    """No traceback and no half-written file: the path that could not be written, and why.
    (Not a read-only folder: the tests may run as root, who writes anywhere.)"""
    (tmp_path / "file").write_text("x")
    if where == "parent is a file":
        target, failing = tmp_path / "file" / "g", tmp_path / "file" / "g"
    else:
        target = tmp_path / "g"
        (target / "manifest.json").mkdir(parents=True)          # os.replace cannot replace it
        failing = target / "manifest.json"
    result = cli("write", target)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        f"python -m npylstm.golden: error: cannot write {failing}: "
        + ("Not a directory" if where == "parent is a file" else "Is a directory")], result.stderr
    if target.is_dir():
        assert not [p.name for p in target.iterdir() if p.name.endswith(".tmp")]


def test_write_bundle_is_atomic_per_file(tmp_path, monkeypatch):
    """A write that fails half way leaves the previous file whole and no temporary file."""
    write(tmp_path / "g")
    before = {p.name: p.read_bytes() for p in (tmp_path / "g").iterdir()}

    def broken_save(file, value, allow_pickle=False):
        file.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(golden.np, "save", broken_save)
    with pytest.raises(OSError) as err:
        write(tmp_path / "g", seed=1)
    assert err.value.filename == str(tmp_path / "g" / "input.npy") and err.value.errno == 28
    assert {p.name: p.read_bytes() for p in (tmp_path / "g").iterdir()} == before
