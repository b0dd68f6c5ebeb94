"""Parameter and Module: the torch.nn-shaped containers around the math.

A Module owns Parameters (and sub-Modules) as attributes, in the order it
sets them, which is torch's ``named_parameters()`` order. It remembers the
cache of its most recent forward so that ``backward`` can use it, except
under ``no_grad()``, where a forward keeps nothing.
"""
import threading

import numpy as np

DTYPES = (np.float32, np.float64)

# Whether a forward keeps what backward needs. Per thread, as torch's grad
# mode is, so that no_grad in one thread does not change another's forward.
_grad_mode = threading.local()

# What a module holds as its cache after a forward under no_grad().
NO_CACHE = "no cache: the most recent forward ran under npylstm.no_grad()"


def is_grad_enabled():
    """False inside ``with npylstm.no_grad():``, True outside (per thread)."""
    return getattr(_grad_mode, "enabled", True)


class no_grad:
    """Context manager (and decorator) for inference: forwards keep no cache.

        with npylstm.no_grad():
            output, (h_n, c_n) = lstm(x)     # same values; no BPTT cache is built

    A ``backward`` whose most recent forward ran inside raises RuntimeError.
    It nests, and on exit, also through an exception, restores the mode that
    was there before. ``eval()`` is separate: it only turns dropout off.
    """

    def __init__(self):
        self._saved = []                 # a stack, so one instance may be entered twice

    def __enter__(self):
        self._saved.append(is_grad_enabled())
        _grad_mode.enabled = False
        return self

    def __exit__(self, exc_type, exc, tb):
        _grad_mode.enabled = self._saved.pop()
        return False

    def __call__(self, fn):
        """``@npylstm.no_grad()`` on a function runs every call of it under no_grad."""
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


class Parameter:
    """An array that a module learns, with the gradient accumulated for it.

    - data: the values (ndarray)
    - grad: ndarray of the same shape and dtype; zeros at first, summed into by
      every backward until ``zero_grad()``
    """

    def __init__(self, data):
        self.data = np.array(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        """The shape of ``data``."""
        return self.data.shape

    @property
    def dtype(self):
        """The dtype of ``data``."""
        return self.data.dtype

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameters, state_dict, train/eval and forward/backward."""

    def __init__(self):
        self.training = True

    def forward(self, *args, **kwargs):
        """Compute the outputs and keep what backward needs; subclasses define it."""
        raise NotImplementedError

    def backward(self, *args, **kwargs):
        """Gradients of the inputs from those of the outputs; adds into ``p.grad``."""
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        """``module(...)`` is ``module.forward(...)``."""
        return self.forward(*args, **kwargs)

    def _saved_cache(self):
        """The cache of the most recent forward, for backward; RuntimeError when
        there was none, or when that forward ran under no_grad()."""
        cache = getattr(self, "_cache", None)
        if cache is NO_CACHE:
            raise RuntimeError(
                f"{type(self).__name__}.backward: the most recent forward ran under "
                f"npylstm.no_grad(), which keeps no cache; run forward again outside no_grad()")
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return cache

    def named_parameters(self, prefix=""):
        """(name, Parameter) pairs with torch's names; submodules give dotted names."""
        pairs = []
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                pairs.append((prefix + name, value))
            elif isinstance(value, Module):
                pairs.extend(value.named_parameters(prefix + name + "."))
        return pairs

    def parameters(self):
        """The Parameters, in the order of ``named_parameters()``."""
        return [p for _, p in self.named_parameters()]

    def modules(self):
        """This module and every submodule, depth first."""
        found = [self]
        for value in vars(self).values():
            if isinstance(value, Module):
                found.extend(value.modules())
        return found

    def zero_grad(self):
        """Set every ``p.grad`` to zero (in place)."""
        for p in self.parameters():
            p.grad[...] = 0

    def train(self, mode=True):
        """Set training mode (dropout on) for this module and its submodules."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode (dropout off); same as ``train(False)``."""
        return self.train(False)

    def state_dict(self):
        """dict name -> a copy of the parameter's array."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters, cast to each parameter's dtype.

        Raises ValueError naming the key for a wrong shape, and with
        ``strict`` for a missing or unexpected name.
        """
        params = dict(self.named_parameters())
        if strict:
            missing = [k for k in params if k not in state_dict]
            unexpected = [k for k in state_dict if k not in params]
            if missing or unexpected:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                    f"unexpected keys {unexpected}")
        for name, value in state_dict.items():
            if name not in params:
                continue
            p = params[name]
            value = np.asarray(value, dtype=p.data.dtype)
            if value.shape != p.data.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {name!r} has shape "
                    f"{value.shape}, expected {p.data.shape}")
            p.data[...] = value


def check_dtype(dtype):
    """np.float32 or np.float64 as a numpy dtype; anything else is a ValueError."""
    dt = np.dtype(dtype)
    if dt not in [np.dtype(d) for d in DTYPES]:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_size(name, value, minimum=1):
    """An integer >= minimum, else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_shape(where, name, array, expected):
    """Raise ValueError unless array.shape matches ``expected``.

    ``expected`` is a tuple of ints and letters; a letter (such as "T")
    matches any size and is shown as is in the message.
    """
    ok = array.ndim == len(expected) and all(
        isinstance(e, str) or s == e for s, e in zip(array.shape, expected))
    if not ok:
        want = "(" + ", ".join(str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{where}: expected {name} of shape {want}, got {tuple(array.shape)}")
    return array


def check_real(where, name, array, cast_to=None):
    """Raise ValueError if ``array`` holds complex values (a cast to a real dtype
    would drop the imaginary part with only a ComplexWarning)."""
    if array.dtype.kind == "c":
        cast = "" if cast_to is None else f" (it is cast to {np.dtype(cast_to)})"
        raise ValueError(f"{where}: expected a real {name}{cast}, "
                         f"got complex values of dtype {array.dtype}")
    return array


def as_real(where, name, value, dtype):
    """``value`` as an ndarray of ``dtype`` (float32/float64); complex values are a
    ValueError (see check_real)."""
    return check_real(where, name, np.asarray(value), dtype).astype(dtype, copy=False)


def as_pair(where, hx):
    """(h_0, c_0) from ``hx``, which must be a tuple or list of two arrays."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        got = f"a {type(hx).__name__} of length {len(hx)}" if isinstance(hx, (tuple, list)) \
            else f"{type(hx).__name__}"
        raise ValueError(f"{where}: hx must be a pair (h_0, c_0) or None, got {got}")
    return hx[0], hx[1]


def uniform(rng, bound, shape, dtype):
    """U(-bound, bound) samples in the given dtype."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
