"""Tasks where memory matters, for the study of LSTM variants (docs/study.md).

- ``adding_problem``: Hochreiter & Schmidhuber (1997). Two values in a long
  sequence are marked; the answer is their sum. Every sequence starts from a
  zero state, so a cell that never forgets is enough (the 1997 LSTM had no
  forget gate and solved it).
- ``continual_adding``: the same episodes back to back in one stream that is
  never reset, as in Gers et al. (2000), who added the forget gate for this
  case. The network must empty its cell at each new episode by itself.
- ``sine_windows``: windows of the seed's sine wave (``npylstm.data``) with a
  random phase and period; the target is the next value.

All return time-major inputs and are reproducible: the same ``rng`` seed
gives the same data. Shapes: T steps, N sequences, E episodes.
"""
import numpy as np


def _check_count(where, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_dtype(where, dtype):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{where}: dtype must be float32 or float64, got {dt}")
    return dt


def adding_problem(num_sequences, seq_len, rng=None, dtype=np.float32):
    """The adding problem: remember two marked values, output their sum.

    Channel 0 is uniform in [0, 1). Channel 1 is 1.0 at exactly two steps,
    one in [0, T//2) and one in [T//2, T), and 0 elsewhere. Always answering
    1.0 scores an MSE of 1/6 (the variance of a sum of two U(0, 1)); the task
    counts as solved when every absolute error is below 0.04.

    Inputs:
    - num_sequences: N >= 1
    - seq_len: T >= 2
    - rng: None, an int seed or a np.random.Generator
    - dtype: np.float32 or np.float64

    Returns:
    - x: (T, N, 2)
    - y: (N, 1), the sum of the two marked values of each sequence
    """
    N = _check_count("adding_problem", "num_sequences", num_sequences, 1)
    T = _check_count("adding_problem", "seq_len", seq_len, 2)
    dtype = _check_dtype("adding_problem", dtype)
    rng = np.random.default_rng(rng)
    values = rng.random((T, N))
    first = rng.integers(0, T // 2, size=N)                 # in [0, T//2)
    second = rng.integers(T // 2, T, size=N)                # in [T//2, T)
    marks = np.zeros((T, N))
    columns = np.arange(N)
    marks[first, columns] = 1.0
    marks[second, columns] = 1.0
    x = np.stack([values, marks], axis=2).astype(dtype)      # (T, N, 2)
    y = (values[first, columns] + values[second, columns])[:, None].astype(dtype)
    return x, y


def continual_adding(num_streams, num_episodes, episode_len, rng=None, dtype=np.float32):
    """Adding-problem episodes back to back in streams that are never reset.

    Each stream is ``num_episodes`` episodes of ``episode_len`` steps. An
    episode is one adding problem (channels 0 and 1 as in ``adding_problem``)
    plus channel 2, which is 1.0 at the episode's first step and 0 elsewhere:
    the cue that a new sum begins. The target of an episode is its sum, read
    at its last step. A network that cannot forget (no forget gate) carries
    every earlier episode's values in its cell and cannot answer.

    Inputs:
    - num_streams: N >= 1
    - num_episodes: E >= 1
    - episode_len: T >= 2
    - rng, dtype: as for adding_problem

    Returns:
    - x: (E*T, N, 3)
    - y: (E, N, 1), y[e] is the target at step e*T + T - 1
    """
    N = _check_count("continual_adding", "num_streams", num_streams, 1)
    E = _check_count("continual_adding", "num_episodes", num_episodes, 1)
    T = _check_count("continual_adding", "episode_len", episode_len, 2)
    dtype = _check_dtype("continual_adding", dtype)
    x, y = adding_problem(E * N, T, rng, np.float64)          # (T, E*N, 2), (E*N, 1)
    x = x.reshape(T, E, N, 2).transpose(1, 0, 2, 3).reshape(E * T, N, 2)
    cue = np.zeros((E * T, N, 1))
    cue[::T] = 1.0                                            # first step of every episode
    return np.concatenate([x, cue], axis=2).astype(dtype), y.reshape(E, N, 1).astype(dtype)


def sine_windows(num_sequences, seq_len, rng=None, dtype=np.float32, periods=(20.0, 80.0)):
    """Windows of sin(2 pi (t + phase) / period), the target being the next value.

    The seed's wave (``npylstm.data.sine_wave``) with period 50, but every
    window draws its own phase in [0, period) and period uniform in
    ``periods``, so the model must read the period off the window.

    Inputs:
    - num_sequences: N >= 1
    - seq_len: T >= 2
    - rng, dtype: as for adding_problem
    - periods: (low, high), the range of the period in steps

    Returns:
    - x: (T, N, 1)
    - y: (N, 1), the value at step T
    """
    N = _check_count("sine_windows", "num_sequences", num_sequences, 1)
    T = _check_count("sine_windows", "seq_len", seq_len, 2)
    dtype = _check_dtype("sine_windows", dtype)
    rng = np.random.default_rng(rng)
    period = rng.uniform(periods[0], periods[1], size=N)
    phase = rng.uniform(0.0, 1.0, size=N) * period
    t = np.arange(T + 1)[:, None]                              # (T+1, 1)
    wave = np.sin(2 * np.pi * (t + phase) / period)           # (T+1, N)
    return wave[:T, :, None].astype(dtype), wave[T][:, None].astype(dtype)
