"""Parameter and Module: the torch.nn-shaped containers around the math.

A Module owns Parameters (and sub-Modules) as attributes, in the order it
sets them, which is torch's ``named_parameters()`` order. It remembers the
cache of its most recent forward so that ``backward`` can use it.
"""
import numpy as np

DTYPES = (np.float32, np.float64)


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


def uniform(rng, bound, shape, dtype):
    """U(-bound, bound) samples in the given dtype."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
