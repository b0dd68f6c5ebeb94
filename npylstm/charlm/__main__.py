"""The command line of the character model: ``python -m npylstm.charlm COMMAND ...``.

    python -m npylstm.charlm train [--text FILE] [--steps S] ...      # npylstm/charlm/train.py
    python -m npylstm.charlm sample CHECKPOINT [--length N] ...       # npylstm/charlm/sampling.py
    python -m npylstm.charlm ngram [--order K] [--text FILE] ...      # npylstm/charlm/ngram.py
    python -m npylstm.charlm inspect CHECKPOINT [--chars N] ...       # npylstm/charlm/inspection.py
    python -m npylstm.charlm COMMAND --help

Each subcommand is a module with two functions:
- ``add_parser(subparsers)``: adds its argparse parser (``subparsers.add_parser(name, ...)``)
  and returns it;
- ``run(args, parser)``: does the work and returns the exit status; ``parser`` is its own
  parser (``parser.error`` exits 2), ``args.argv`` its own arguments.
Adding one is a line in SUBCOMMANDS.
"""
import argparse
import importlib
import sys

PROG = "python -m npylstm.charlm"

# name -> module of npylstm.charlm, in the order of --help
SUBCOMMANDS = {
    "train": "train",
    "sample": "sampling",
    "ngram": "ngram",
    "inspect": "inspection",
}


def build_parser():
    """The parser of ``python -m npylstm.charlm`` and its subcommands' parsers by name."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="A character-level LSTM language model in NumPy (docs/charlm.md).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"npylstm.charlm.{module_name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(run=module.run, parser=sub)
    return parser


def main(argv=None):
    """The command line; returns the exit status (argument errors exit 2 through argparse)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    # The subcommand's own arguments: everything after its name (the top-level
    # parser has no options of its own besides --help, so the name comes first).
    args.argv = argv[argv.index(args.command) + 1:]
    return args.run(args, args.parser)


if __name__ == "__main__":
    sys.exit(main())
