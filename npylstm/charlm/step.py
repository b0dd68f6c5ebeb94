"""Truncated backpropagation through time over B streams (torch's word_language_model, char-rnn).

The corpus is laid out as B contiguous streams, ``streams`` (L, B) from
``npylstm.text.batchify``. Chunk k is rows k T .. k T + T of it, and its targets
are the same rows shifted by one character. Chunk k + 1 continues every stream
exactly where chunk k stopped, so the LSTM state at the end of chunk k is the
right initial state for chunk k + 1: it is carried. The gradient is not: each
chunk backpropagates through its own T steps only (the state is "detached",
torch's ``repackage_hidden``).
"""
import numpy as np

from ..clip import clip_grad_norm_
from ..loss import CrossEntropyLoss
from ..module import no_grad
from ..text import batchify


def num_chunks(streams, seq_len):
    """How many chunks get_batch gives for streams of L rows: ceil((L - 1) / seq_len)."""
    return -(-(len(streams) - 1) // seq_len)


def get_batch(streams, k, seq_len):
    """Chunk k of the streams: (inputs, targets), each (T, B) with T = seq_len
    (shorter for the last chunk). targets[t] = inputs[t + 1], also across chunks.

    Inputs:
    - streams: (L, B) ids from batchify
    - k: the chunk index, 0 <= k < num_chunks(streams, seq_len)
    - seq_len: T >= 1

    Returns:
    - inputs = streams[k T : k T + T], targets = streams[k T + 1 : k T + T + 1] (views)
    """
    start = k * seq_len
    if not 0 <= start < len(streams) - 1:
        raise ValueError(f"get_batch: chunk {k} of seq_len {seq_len} is outside streams of "
                         f"{len(streams)} rows ({num_chunks(streams, seq_len)} chunks)")
    T = min(seq_len, len(streams) - 1 - start)
    return streams[start:start + T], streams[start + 1:start + 1 + T]


def train_step(model, optimizer, criterion, inputs, targets, state, clip):
    """One truncated-BPTT step on one chunk.

    Inputs:
    - model: a CharLM; optimizer: e.g. Adam over model.parameters();
      criterion: CrossEntropyLoss() (reduction "mean")
    - inputs, targets: (T, B) ids, from get_batch
    - state: None (zeros, at the start of the streams) or (h, c), each (L, B, H):
      the state at the end of the previous chunk
    - clip: the max norm for clip_grad_norm_, or None for no clipping
    The parameter gradients must be zero on entry; the step leaves them zero.

    Returns:
    - loss: float, mean nats per character of this chunk
    - state: (h, c) at the end of this chunk, to carry into the next one
    """
    T, B = inputs.shape
    logits, (h, c) = model(inputs, hx=state)      # the state is CARRIED IN from the previous chunk
    loss = criterion(logits.reshape(T * B, -1), targets.reshape(T * B))
    grad_logits = criterion.backward().reshape(logits.shape)
    model.backward(grad_logits)                   # returns (grad_h0, grad_c0): dropped, so no
                                                  # gradient reaches the previous chunk: the CUT
    if clip is not None:
        clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad()
    return float(loss), (h.copy(), c.copy())      # copies: the caller's state shares no buffer with the model


@no_grad()
def evaluate(model, streams, seq_len, batch_size=None):
    """Mean nats per character of the model over held-out streams, state carried.

    Every chunk of get_batch is scored in order, each stream's state carried
    from one chunk to the next, as in training; no cache is kept (no_grad) and
    dropout is off for the call. The result does not depend on seq_len (up to
    round-off): it only sets how many steps one forward runs.

    Inputs:
    - streams: (L, B) ids from batchify (L >= 2), or (M,) ids with batch_size
      (then batchify(ids, batch_size) is scored: the last M mod B ids and the
      first id of each stream are not predicted)
    - seq_len: T, the chunk length (longer chunks are fewer Python steps)

    Returns:
    - float: the sum of -log p(target) over all (L - 1) B targets, divided by their number
    """
    streams = np.asarray(streams)
    if streams.ndim == 1:
        if batch_size is None:
            raise ValueError("evaluate: a 1-D id stream needs batch_size")
        streams = batchify(streams, batch_size)
    if streams.ndim != 2 or len(streams) < 2:
        raise ValueError(f"evaluate: expected streams of shape (L, B) with L >= 2, got {streams.shape}")
    was_training = model.training
    model.eval()
    criterion = CrossEntropyLoss(reduction="sum")
    total, count, state = 0.0, 0, None
    try:
        for k in range(num_chunks(streams, seq_len)):
            inputs, targets = get_batch(streams, k, seq_len)
            logits, state = model(inputs, hx=state)
            total += float(criterion(logits.reshape(targets.size, -1), targets.reshape(-1)))
            count += targets.size
    finally:
        model.train(was_training)
    return total / count


def bits_per_char(nats):
    """Nats per character to bits per character: divide by ln 2."""
    return nats / np.log(2)
