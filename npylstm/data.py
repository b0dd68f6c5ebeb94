"""The seed's data: a sine wave cut into windows, each with the next value as target.

    x = 0, 1, ..., n-1          y = sin(2 pi x / period)
    window i = y[i : i+L]       target i = y[i+L]          i = 0 .. n-L-1

The last ``num_valid`` windows are held out for validation; their targets are
the last ``num_valid`` points of the wave.

Shapes: T = L steps, N windows.
"""
import numpy as np


def sine_wave(num_points=500, period=50):
    """The seed's wave.

    Returns:
    - x: (num_points,) = 0, 1, ..., num_points-1 (float64)
    - y: (num_points,) = sin(2 pi x / period)
    """
    x = np.linspace(0, num_points - 1, num_points)
    y = np.sin(2 * x * np.pi / period)
    return x, y


def make_sequence_data(y, seq_len):
    """Every window of ``seq_len`` consecutive values and the value after it.

    Inputs:
    - y: (n,) series
    - seq_len: L, with 1 <= L < n

    Returns:
    - seq: (n-L, L), seq[i] = y[i:i+L]
    - target: (n-L, 1), target[i] = y[i+L]
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"make_sequence_data: expected y of shape (n,), got {y.shape}")
    n = y.shape[0]
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) \
            or not 1 <= seq_len < n:
        raise ValueError(f"make_sequence_data: seq_len must be an integer in [1, {n}), "
                         f"got {seq_len!r}")
    seq = np.lib.stride_tricks.sliding_window_view(y, seq_len)[:-1].copy()   # (n-L, L)
    target = y[seq_len:, None].copy()                                         # (n-L, 1)
    return seq, target


def split_train_valid(seq, target, num_valid):
    """The last ``num_valid`` windows for validation, the rest for training.

    Inputs:
    - seq: (M, L) windows; target: (M, 1) the value after each window
    - num_valid: V, in [1, M)

    Returns:
    - (seq_train, target_train): (M - V, L), (M - V, 1)
    - (seq_valid, target_valid): (V, L), (V, 1)
    """
    if not 1 <= num_valid < len(seq):
        raise ValueError(f"split_train_valid: num_valid must be in [1, {len(seq)}) to leave "
                         f"training windows, got {num_valid}")
    return (seq[:-num_valid], target[:-num_valid]), (seq[-num_valid:], target[-num_valid:])


def time_major(seq):
    """(N, T) windows -> (T, N, 1), the layout the LSTM reads (the seed's permute + unsqueeze)."""
    return np.ascontiguousarray(np.asarray(seq).T[:, :, None])
