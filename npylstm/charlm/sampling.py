"""Sampling text from a character model: ``python -m npylstm.charlm sample``.

    python -m npylstm.charlm sample runs/charlm/model.npz --prime "def " --temperature 0.7

The model reads the prime in one call, then draws one character at a time
from softmax(logits / temperature) and feeds it back in: a single stream
(N = 1) whose LSTM state is carried from one character to the next.
"""
import numpy as np

from ..argtypes import at_least, fail, positive_float
from ..checkpoint import CheckpointError
from ..functional.cell import lstm_cell_forward
from ..module import no_grad

PROG = "python -m npylstm.charlm sample"
START = "\n"          # what the model reads first when there is no prime: a file starts after one


@no_grad()
def sample(model, vocab, length, *, temperature=1.0, prime="", seed=0):
    """The prime followed by exactly ``length`` characters drawn from the model.

    Inputs:
    - model: a CharLM; vocab: its Vocabulary
    - length: N >= 0 characters to draw
    - temperature: TAU > 0; each character is drawn from softmax(logits / TAU):
      below 1 sharper (likelier characters), above 1 flatter
    - prime: the text the model reads first (every character in the vocabulary);
      empty: the model starts after a newline (START, or the vocabulary's first
      character if it has no newline), which is not part of the result
    - seed: the generator of the draws; the same seed gives the same text

    Returns: str, prime + N characters. ValueError for characters of the prime that
    are not in the vocabulary (naming them) and for a temperature that is not > 0.
    """
    if not temperature > 0:
        raise ValueError(f"sample: temperature must be > 0, got {temperature!r}")
    unknown = sorted(set(prime) - set(vocab.chars))
    if unknown:
        raise ValueError(f"{len(unknown)} character(s) not in the model's vocabulary: "
                         f"{', '.join(repr(c) for c in unknown[:10])}")
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()                                 # no dropout while sampling
    try:
        start = prime or (START if START in vocab.chars else vocab.chars[0])
        logits, state = model(vocab.encode(start)[:, None])          # (T, 1, V): read the prime
        drawn = np.empty(length, dtype=np.int64)
        for t in range(length):
            z = logits[-1, 0].astype(np.float64) / temperature        # (V,)
            p = np.exp(z - z.max())
            cdf = np.cumsum(p)
            drawn[t] = min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"),
                           len(vocab) - 1)
            # N = 1: one character in, the state carried to the next one.
            logits, state = next_step(model, drawn[t:t + 1], state)  # (1, 1, V)
    finally:
        model.train(was_training)
    return prime + vocab.decode(drawn)


def next_step(model, ids, state):
    """One step of a CharLM for N streams, as model(ids[None], state) computes it in eval mode.

    The step by step path of sampling: LSTMCell's functional step on each layer's
    weights directly, so a single character does not pay for the sequence
    machinery of the LSTM (which restacks the weights on every call).

    Inputs:
    - ids: (N,) integers; state: (h, c), each (L, N, H)
    Returns: logits (1, N, V), (h, c) each (L, N, H)
    """
    lstm = model.lstm
    x = model.embedding.weight.data[ids]                             # (N, E)
    h, c = np.empty_like(state[0]), np.empty_like(state[1])
    for k in range(lstm.num_layers):
        h[k], c[k], _ = lstm_cell_forward(x, state[0][k], state[1][k], **lstm.layer_weights(k))
        x = h[k]                                                     # no dropout: eval mode
    logits = x @ model.linear.weight.data.T + model.linear.bias.data  # (N, V)
    return logits[None], (h, c)


# ----------------------------------------------------------------------------- command line

def add_parser(subparsers):
    """Add the ``sample`` subcommand to the subparsers of ``python -m npylstm.charlm``."""
    p = subparsers.add_parser(
        "sample", prog=PROG, help="print text sampled from a trained model",
        description="Print the prime and then exactly N characters sampled from a trained "
                    "character model, one at a time from softmax(logits / TAU).")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a model.npz written by train")
    p.add_argument("--length", type=at_least(0), default=500, metavar="N",
                   help="characters after the prime (default %(default)s)")
    p.add_argument("--temperature", type=positive_float, default=1.0, metavar="TAU",
                   help="> 0; lower is more conservative (default %(default)s)")
    p.add_argument("--prime", default="", metavar="TEXT",
                   help="text the model reads first and that starts the output "
                        "(default: none, the model starts after a newline)")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="the same seed gives the same text (default %(default)s)")
    return p


def run(args, parser):
    """The ``sample`` subcommand; returns the exit status."""
    from .train import load_charlm
    try:
        model, vocab, _ = load_charlm(args.checkpoint)
    except CheckpointError as err:
        return fail(PROG, str(err))
    unknown = sorted(set(args.prime) - set(vocab.chars))
    if unknown:
        parser.error(f"argument --prime: {len(unknown)} character(s) not in the model's "
                     f"vocabulary: {', '.join(repr(c) for c in unknown[:10])}")
    text = sample(model, vocab, args.length, temperature=args.temperature, prime=args.prime,
                  seed=args.seed)
    print(text)
    return 0
