"""npylstm.tasks: the adding problem (and its continual and sine cousins) as the contract says."""
import numpy as np
import pytest

from npylstm.tasks import adding_problem, continual_adding, sine_windows


@pytest.mark.parametrize("T", [2, 3, 10, 51])
def test_adding_problem_marks_and_targets(T):
    N = 200
    x, y = adding_problem(N, T, rng=0)
    assert x.shape == (T, N, 2) and y.shape == (N, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    values, marks = x[:, :, 0], x[:, :, 1]
    assert np.all((values >= 0) & (values < 1)), "values outside [0, 1)"
    assert set(np.unique(marks)) <= {0.0, 1.0}, "marks other than 0 and 1"
    assert np.all(marks.sum(axis=0) == 2), "not exactly two marks per sequence"
    assert np.all(marks[:T // 2].sum(axis=0) == 1), "not one mark in [0, T//2)"
    assert np.all(marks[T // 2:].sum(axis=0) == 1), "not one mark in [T//2, T)"
    np.testing.assert_allclose(y[:, 0], (values * marks).sum(axis=0), rtol=1e-6,
                               err_msg="target is not the sum of the marked values")


def test_adding_problem_marks_cover_both_halves():
    """Over many sequences every allowed position is used, so the marks are not fixed."""
    T = 8
    x, _ = adding_problem(2000, T, rng=1)
    positions = set(np.nonzero(x[:, :, 1])[0].tolist())
    assert positions == set(range(T))


def test_adding_problem_baseline_is_one_sixth():
    _, y = adding_problem(20000, 10, rng=2, dtype=np.float64)
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.01


def test_same_seed_same_data_and_dtype():
    a = adding_problem(7, 12, rng=3)
    b = adding_problem(7, 12, rng=np.random.default_rng(3))
    c = adding_problem(7, 12, rng=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0]), "a different seed gave the same data"
    x, y = adding_problem(7, 12, rng=3, dtype=np.float64)
    assert x.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_allclose(x, a[0], rtol=1e-7)


@pytest.mark.parametrize("args, match", [
    ((5, 1), "seq_len must be an integer >= 2, got 1"),
    ((5, 0), "seq_len"),
    ((0, 10), "num_sequences must be an integer >= 1, got 0"),
    ((-3, 10), "num_sequences"),
    ((2.5, 10), "num_sequences"),
    ((5, True), "seq_len"),
])
def test_adding_problem_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        adding_problem(*args)


def test_adding_problem_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        adding_problem(3, 4, dtype=np.int32)


def test_continual_adding_is_episodes_back_to_back():
    N, E, T = 5, 4, 6
    x, y = continual_adding(N, E, T, rng=0)
    assert x.shape == (E * T, N, 3) and y.shape == (E, N, 1)
    for e in range(E):
        episode = x[e * T:(e + 1) * T]
        assert np.all(episode[0, :, 2] == 1) and np.all(episode[1:, :, 2] == 0), "start cue"
        assert np.all(episode[:T // 2, :, 1].sum(axis=0) == 1), "first-half mark"
        assert np.all(episode[T // 2:, :, 1].sum(axis=0) == 1), "second-half mark"
        np.testing.assert_allclose(y[e, :, 0], (episode[:, :, 0] * episode[:, :, 1]).sum(axis=0),
                                   rtol=1e-6, err_msg=f"target of episode {e}")
    np.testing.assert_array_equal(continual_adding(N, E, T, rng=0)[0], x)
    with pytest.raises(ValueError, match="num_episodes"):
        continual_adding(N, 0, T)


def test_sine_windows_continue_the_wave():
    x, y = sine_windows(50, 30, rng=0, dtype=np.float64)
    assert x.shape == (30, 50, 1) and y.shape == (50, 1)
    assert np.all(np.abs(x) <= 1)
    # A sine obeys s(t+1) = 2 cos(w) s(t) - s(t-1); recover w from the window and check y.
    s = x[:, :, 0]
    two_cos = (s[2:] + s[:-2]).sum(axis=0) / s[1:-1].sum(axis=0)
    np.testing.assert_allclose(y[:, 0], two_cos * s[-1] - s[-2], atol=1e-6,
                               err_msg="target is not the next value of the wave")
