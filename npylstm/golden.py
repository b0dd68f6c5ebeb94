"""Golden vectors: a self-contained set of reference values for a port of the LSTM.

Someone porting an LSTM to C, Rust or an accelerator writes a bundle, runs
their port on its inputs and weights, saves what the port computed, and
checks it:

    python -m npylstm.golden write golden/                 # a small bundle, a few KB
    ... the port reads golden/*.npy (or --format json), writes results/*.npy or *.json ...
    python -m npylstm.golden check golden/ results/        # exit 0 ok, 1 too far, 2 malformed

A bundle is ``manifest.json`` (configuration, equations, gate order, layouts,
and every array with its file, shape, dtype, role and tolerance) and one file
per array. Roles: input, weight, initial state, upstream gradient (the inputs
of the port), output and gradient (what ``check`` compares). The gradients
are those of the scalar

    loss = sum(output * upstream_output) + sum(h_n * upstream_h_n) + sum(c_n * upstream_c_n)

so a port's backward receives the upstream arrays as its incoming gradients.

The values come from npylstm in float64 (exact against torch.nn.LSTM to
round-off). With ``--dtype float32`` every input and weight is drawn
representable in float32, the reference is still computed in float64 and
then rounded to float32, so the expected values carry no float32 error.
"""
import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .argtypes import DTYPES, at_least
from .files import JSON_INDENT, atomic_write, cannot_write, make_folder, write_text
from .lstm import LSTM

MANIFEST = "manifest.json"
CHECKED_ROLES = ("output", "gradient")

# Tolerances for a port in each precision: pass when
# max|result - expected| <= atol + rtol * max|expected|.
TOLERANCES = {
    "float64": dict(rtol=1e-9, atol=1e-12, why=(
        "float64 round-off over this many steps is about 1e-15 relative; 1e-9 leaves room for "
        "another summation order and another libm's exp and tanh, while any real mistake (a "
        "swapped gate block, a missing bias, a transposed matrix, an off-by-one step) gives "
        "errors of 1e-3 or more")),
    "float32": dict(rtol=1e-4, atol=1e-6, why=(
        "a float32 port carries about 6e-8 relative error per operation, growing with the sums "
        "over I + H terms and over the steps; 1e-4 is far above that and far below the 1e-3 "
        "or more of any real mistake")),
}

EQUATIONS = ("docs/lstm.md of npylstm: section 1 (one step, eq. 1-7), 2 (a sequence), "
             "3 and 4 (backward and backpropagation through time), 5 (projection), "
             "6 (layers), 7 (bidirectional); the same equations as torch.nn.LSTM. "
             "Peepholes: the variants of docs/lstm.md, the same as ONNX's LSTM with P. "
             "lengths: docs/packed.md (torch's packed sequences).")


@dataclass
class GoldenConfig:
    """The LSTM and the data of a bundle; the fields are the options of ``write``."""
    input_size: int = 3
    hidden_size: int = 4
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    seq_len: int = 5
    batch: int = 2
    lengths: bool = False
    peephole: bool = False
    dtype: str = "float64"
    seed: int = 0
    format: str = "npy"


def _layouts(config):
    H, P = config.hidden_size, config.proj_size
    Hout, D = P or H, 2 if config.bidirectional else 1
    layouts = {
        "input": "(T, N, I): time-major, row-major (C order), as torch.nn.LSTM with "
                 "batch_first=False",
        "h_0, c_0, h_n, c_n": f"(D*L, N, .) with row j = layer j // D, direction j % D "
                              f"(D = {D}); h has Hout = {Hout} columns, c has H = {H}",
        "output": f"(T, N, D*Hout): the last layer's h at every step; with D = 2 the forward "
                  f"direction fills columns 0:Hout and the reverse direction Hout:2*Hout",
        "weight_ih_l{k}": "(4H, I) for layer 0, (4H, D*Hout) above: W_ih, applied as x @ W_ih.T",
        "weight_hh_l{k}": "(4H, Hout): W_hh, applied as h_prev @ W_hh.T",
        "bias_ih_l{k}, bias_hh_l{k}": "(4H,): both are added, "
                                      "z = x W_ih^T + b_ih + h W_hh^T + b_hh",
        "_reverse": "suffix of the reverse direction's parameters (bidirectional only)",
    }
    if P:
        layouts["weight_hr_l{k}"] = "(P, H): the projection, h = (o * tanh(c)) @ W_hr.T"
    if config.peephole:
        layouts["weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k}"] = (
            "(H,): peepholes, i = sigmoid(z_i + w_ci * c_prev), f = sigmoid(z_f + w_cf * c_prev), "
            "o = sigmoid(z_o + w_co * c)")
    if config.lengths:
        layouts["lengths"] = ("(N,) int64: sequence b runs over steps 0..lengths[b]-1 only; its "
                              "output is zero after that and h_n, c_n are its state at its own "
                              "last step (torch's packed sequences)")
    return layouts


NAMES = {
    "input": "x, the input sequence; lengths: the length of each sequence (with --lengths)",
    "h_0, c_0": "the initial hidden and cell state of every layer and direction",
    "weight_*, bias_*": "the parameters, with torch.nn.LSTM's names, shapes and layouts",
    "upstream_output, upstream_h_n, upstream_c_n": "dLoss/d output, h_n, c_n: the gradients "
                                                   "arriving from above, the input of backward",
    "output, h_n, c_n": "what forward returns: the last layer's h at every step, and the final "
                        "h and c of every layer and direction",
    "grad_X": "dLoss/d X, same shape and layout as X "
              "(grad_input, grad_h_0, grad_weight_ih_l0, ...)",
}


def _draw(rng, shape, dtype, scale=1.0):
    """Random normal values representable in ``dtype``, as float64."""
    return (scale * rng.standard_normal(shape)).astype(dtype).astype(np.float64)


def make_bundle(config):
    """The arrays and the manifest of a bundle, without writing anything.

    Returns (manifest dict, {name: ndarray}). Arrays are in the bundle's dtype
    (lengths: int64); the manifest's "file" entries assume ``config.format``.
    """
    dtype = np.dtype(config.dtype)
    rng = np.random.default_rng(config.seed)
    options = dict(num_layers=config.num_layers, bidirectional=config.bidirectional,
                   proj_size=config.proj_size)
    if config.peephole:
        options["peephole"] = True
    lstm = LSTM(config.input_size, config.hidden_size, **options, dtype=np.float64, rng=rng)
    for p in lstm.parameters():                        # distinct values, b_ih != b_hh
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape).astype(dtype)

    T, N, I = config.seq_len, config.batch, config.input_size
    D, H = 2 if config.bidirectional else 1, config.hidden_size
    DL, Hout = D * config.num_layers, config.proj_size or H
    x = _draw(rng, (T, N, I), dtype)
    h_0, c_0 = _draw(rng, (DL, N, Hout), dtype, 0.5), _draw(rng, (DL, N, H), dtype, 0.5)
    lengths = rng.integers(1, T + 1, size=N) if config.lengths else None

    output, (h_n, c_n) = lstm(x, (h_0, c_0), lengths=lengths)
    upstream = {"upstream_output": _draw(rng, output.shape, dtype),
                "upstream_h_n": _draw(rng, h_n.shape, dtype),
                "upstream_c_n": _draw(rng, c_n.shape, dtype)}
    grad_input, (grad_h_0, grad_c_0) = lstm.backward(
        upstream["upstream_output"], (upstream["upstream_h_n"], upstream["upstream_c_n"]))

    entries = [("input", x, "input")]
    if lengths is not None:
        entries.append(("lengths", lengths.astype(np.int64), "input"))
    entries += [(name, p.data, "weight") for name, p in lstm.named_parameters()]
    entries += [("h_0", h_0, "initial state"), ("c_0", c_0, "initial state")]
    entries += [(name, value, "upstream gradient") for name, value in upstream.items()]
    entries += [("output", output, "output"), ("h_n", h_n, "output"), ("c_n", c_n, "output")]
    entries += [("grad_input", grad_input, "gradient"), ("grad_h_0", grad_h_0, "gradient"),
                ("grad_c_0", grad_c_0, "gradient")]
    entries += [("grad_" + name, p.grad, "gradient") for name, p in lstm.named_parameters()]

    tolerance = TOLERANCES[dtype.name]
    arrays, described = {}, []
    for name, value, role in entries:
        value = np.ascontiguousarray(value if value.dtype.kind == "i" else value.astype(dtype))
        arrays[name] = value
        entry = dict(name=name, file=f"{name}.{config.format}", shape=list(value.shape),
                     dtype=value.dtype.name, role=role)
        if role in CHECKED_ROLES:
            entry.update(rtol=tolerance["rtol"], atol=tolerance["atol"])
        described.append(entry)

    manifest = {
        "about": "Golden vectors of an LSTM, written by npylstm (python -m npylstm.golden write). "
                 "Feed the arrays of role input, weight, initial state and upstream gradient to "
                 "your LSTM; save what it computes for the roles output and gradient under the "
                 "same names; then run: python -m npylstm.golden check THIS_DIR RESULTS_DIR",
        "config": asdict(config),
        "lstm": f"torch.nn.LSTM({config.input_size}, {H}, num_layers={config.num_layers}, "
                f"bidirectional={config.bidirectional}, proj_size={config.proj_size})"
                + (" with peepholes (npylstm.LSTM(..., peephole=True))" if config.peephole else ""),
        "equations": EQUATIONS,
        "gate_order": "(i, f, g, o): along the 4H axis of weight_ih, weight_hh, bias_ih and "
                      "bias_hh, rows 0:H feed the input gate i, H:2H the forget gate f, 2H:3H "
                      "the cell candidate g (tanh), 3H:4H the output gate o",
        "layouts": _layouts(config),
        "names": NAMES,
        "loss": "the gradients are those of loss = sum(output * upstream_output) + "
                "sum(h_n * upstream_h_n) + sum(c_n * upstream_c_n)",
        "files": "one .npy file per array (NumPy format, little-endian, C order)"
                 if config.format == "npy" else
                 "one .json file per array: nested lists in C order (the shape is in 'arrays'); "
                 "numbers are written with all the digits needed to read back the same value",
        "results": "check reads RESULTS_DIR/NAME.npy or RESULTS_DIR/NAME.json for every array "
                   "of role output or gradient; JSON may be nested lists of the array's shape "
                   "or one flat list in C order",
        "tolerance": dict(tolerance, rule="an array passes when max|result - expected| <= "
                                          "atol + rtol * max|expected|"),
        "arrays": described,
    }
    return manifest, arrays


def write_bundle(directory, config):
    """Write the bundle of ``config`` into ``directory`` (created if needed).

    Returns the manifest (a dict)."""
    directory = Path(directory)
    make_folder(directory)
    manifest, arrays = make_bundle(config)
    for entry in manifest["arrays"]:
        path, value = directory / entry["file"], arrays[entry["name"]]
        if config.format == "npy":
            atomic_write(path, lambda f: np.save(f, value, allow_pickle=False))
        else:
            # Data, not a document: one line of nested lists, no indent.
            write_text(path, json.dumps(value.tolist()) + "\n")
    write_text(directory / MANIFEST, manifest_text(manifest))    # last: a bundle with a
    return manifest                                                # manifest is complete


def manifest_text(manifest):
    """The manifest as indented JSON, with one line per array so that it reads as a table."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "arrays"}, indent=JSON_INDENT)
    rows = ",\n".join("    " + json.dumps(entry) for entry in manifest["arrays"])
    return head[:-2] + ',\n  "arrays": [\n' + rows + "\n  ]\n}\n"


class BundleError(Exception):
    """A malformed bundle or results folder: ``check`` exits 2 with this one-line message."""


def read_array(path):
    """An array from a .npy file or a .json file of (nested) lists; BundleError if unreadable."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.asarray(json.loads(path.read_text(encoding="utf-8")), dtype=np.float64)
    except (OSError, ValueError, TypeError) as error:
        raise BundleError(f"cannot read {path}: {error}") from None


def _read_manifest(bundle):
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} is not a golden bundle: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        arrays = manifest["arrays"]
        for entry in arrays:
            entry["name"], entry["file"], tuple(entry["shape"]), entry["role"]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{path} is not a valid manifest: {error!r}") from None
    return arrays


def _read_result(results, entry):
    """The port's array for a manifest entry, from NAME.npy or NAME.json."""
    name, shape = entry["name"], tuple(entry["shape"])
    for suffix in (".npy", ".json"):
        path = Path(results) / (name + suffix)
        if path.is_file():
            value = read_array(path)
            if value.shape != shape and value.ndim == 1 and value.size == int(np.prod(shape)) \
                    and suffix == ".json":
                value = value.reshape(shape)              # a flat list in C order
            if value.shape != shape:
                raise BundleError(f"{path}: expected {name} of shape {shape}, got {value.shape}")
            return value
    raise BundleError(f"{results} has no {name}.npy or {name}.json "
                      f"(the {entry['role']} {name}, shape {shape})")


def check_bundle(bundle, results, out=print):
    """Compare a port's results with a bundle; returns the exit status 0, 1 or 2.

    Prints, through ``out``, one line per array (max abs and max relative
    error, relative to max|expected|) and then one summary line: "OK ...",
    "FAIL ..." naming the arrays beyond tolerance, or "ERROR ..." naming the
    problem with a malformed bundle or results folder (status 2).
    """
    try:
        if not Path(results).is_dir():
            raise BundleError(f"results folder {results} does not exist")
        rows, failed = [], []
        for entry in _read_manifest(bundle):
            if entry["role"] not in CHECKED_ROLES:
                continue
            expected = read_array(Path(bundle) / entry["file"]) \
                if (Path(bundle) / entry["file"]).is_file() else None
            if expected is None:
                raise BundleError(f"bundle {bundle} is missing {entry['file']} ({entry['name']})")
            if expected.shape != tuple(entry["shape"]):
                raise BundleError(f"bundle {bundle}: {entry['file']} has shape {expected.shape}, "
                                  f"the manifest says {tuple(entry['shape'])}")
            result = _read_result(results, entry)
            expected, result = expected.astype(np.float64), result.astype(np.float64)
            scale = float(np.max(np.abs(expected), initial=0.0))
            with np.errstate(invalid="ignore"):
                diff = np.abs(result - expected)
            abs_err = float(np.max(np.where(np.isnan(diff), np.inf, diff), initial=0.0))
            rel_err = abs_err / scale if scale > 0 else abs_err
            try:
                allowed = float(entry["atol"]) + float(entry["rtol"]) * scale
            except (KeyError, TypeError, ValueError):
                raise BundleError(f"the manifest gives {entry['name']} no rtol and atol") from None
            ok = abs_err <= allowed
            rows.append((entry["name"], abs_err, rel_err, ok))
            if not ok:
                failed.append(f"{entry['name']} (max abs {abs_err:.2e} > {allowed:.2e})")
        if not rows:                # "OK: all 0 arrays" would pass a port that was never checked
            raise BundleError(f"{Path(bundle) / MANIFEST} lists no output or gradient arrays, "
                              f"so nothing was compared")
    except BundleError as error:
        out(f"ERROR: {error}")
        return 2
    width = max(len(name) for name, *_ in rows) if rows else 4
    for name, abs_err, rel_err, ok in rows:
        out(f"{name:<{width}}  max abs {abs_err:9.2e}  max rel {rel_err:9.2e}  "
            f"{'ok' if ok else 'BEYOND TOLERANCE'}")
    if failed:
        out(f"FAIL: {len(failed)} of {len(rows)} arrays beyond tolerance: {', '.join(failed)}")
        return 1
    out(f"OK: all {len(rows)} arrays within tolerance")
    return 0


PROG = "python -m npylstm.golden"


def build_parser():
    """The argparse parser of ``python -m npylstm.golden`` (subcommands write and check)."""
    defaults = GoldenConfig()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Golden vectors for ports of the LSTM: write a bundle of reference values, "
                    "or check a port's results against one.")
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write a bundle into DIR")
    write.add_argument("directory", metavar="DIR")
    write.add_argument("--input-size", type=at_least(1), default=defaults.input_size, metavar="I")
    write.add_argument("--hidden-size", type=at_least(1), default=defaults.hidden_size, metavar="H")
    write.add_argument("--num-layers", type=at_least(1), default=defaults.num_layers, metavar="L")
    write.add_argument("--bidirectional", action="store_true")
    write.add_argument("--proj-size", type=at_least(0), default=defaults.proj_size, metavar="P")
    write.add_argument("--seq-len", type=at_least(1), default=defaults.seq_len, metavar="T")
    write.add_argument("--batch", type=at_least(1), default=defaults.batch, metavar="N")
    write.add_argument("--lengths", action="store_true",
                       help="a random length per sequence (torch's packed sequences)")
    write.add_argument("--peephole", action="store_true", help="peephole connections")
    write.add_argument("--dtype", choices=DTYPES, default=defaults.dtype)
    write.add_argument("--seed", type=at_least(0), default=defaults.seed, metavar="S")
    write.add_argument("--format", choices=("npy", "json"), default=defaults.format)
    check = commands.add_parser("check", help="compare a port's results with a bundle")
    check.add_argument("directory", metavar="DIR", help="the bundle")
    check.add_argument("results", metavar="RESULTS_DIR",
                       help="the port's arrays: NAME.npy or NAME.json for every output "
                            "and gradient")
    return parser


def main(argv=None):
    """``python -m npylstm.golden write|check``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        return check_bundle(args.directory, args.results)
    if args.proj_size >= args.hidden_size:
        parser.error(f"--proj-size must be smaller than --hidden-size={args.hidden_size}, "
                     f"got {args.proj_size}")
    if Path(args.directory).exists() and not Path(args.directory).is_dir():
        parser.error(f"DIR {args.directory} exists and is not a folder")
    config = GoldenConfig(**{k: v for k, v in vars(args).items()
                             if k not in ("command", "directory")})
    try:
        manifest = write_bundle(args.directory, config)
    except OSError as err:
        return cannot_write(PROG, err)
    size = sum((Path(args.directory) / e["file"]).stat().st_size for e in manifest["arrays"]) \
        + (Path(args.directory) / MANIFEST).stat().st_size
    print(f"wrote {len(manifest['arrays'])} arrays and {MANIFEST} ({size} bytes) to "
          f"{args.directory}")
    print(f"check a port's results with: "
          f"python -m npylstm.golden check {args.directory} RESULTS_DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
