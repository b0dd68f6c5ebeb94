"""The names of the LSTM variants and the check of their options.

The variants are those of Greff et al., "LSTM: A Search Space Odyssey" (2017),
in ONNX's terms where ONNX has them (docs/lstm.md, section 11):

- peephole: (w_ci, w_cf, w_co) add w_ci * c_prev to z_i, w_cf * c_prev to
  z_f and w_co * c to z_o (ONNX ``P``)
- input_forget: f = 1 - i, the coupled input and forget gate (CIFG, ONNX
  ``input_forget=1``)
- clip: every gate pre-activation, peephole term included, is clipped to
  [-clip, clip] before its activation (ONNX ``clip``); the cell is not
- ablate: names from ABLATIONS; a gate is fixed at 1, an activation becomes
  the identity (g = z_g, h = o * c)

``check_variant`` is shared by the functions of this package and by
``npylstm.LSTM``, so a bad option gives the same ValueError everywhere.
"""
import math
import numbers

ABLATIONS = ("input_gate", "forget_gate", "output_gate", "input_activation", "output_activation")


def check_variant(input_forget=False, clip=None, ablate=()):
    """Validate the variant options; return them as (bool, float or None, tuple).

    The tuple of ablations is in the order of ABLATIONS, without repeats; a
    single name given as a string is accepted.

    Raises ValueError for an unknown ablation name, a clip that is not a
    finite number > 0, and input_forget with an ablated input or forget gate
    (f = 1 - i needs both gates).
    """
    if isinstance(ablate, str):
        ablate = (ablate,)
    try:
        names = tuple(ablate)
    except TypeError:
        raise ValueError(f"ablate must be a tuple of names from {ABLATIONS}, got {ablate!r}") from None
    unknown = [a for a in names if a not in ABLATIONS]
    if unknown:
        raise ValueError(f"ablate: unknown name(s) {unknown}, expected names from {ABLATIONS}")
    names = tuple(a for a in ABLATIONS if a in names)
    if clip is not None:
        if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
            raise ValueError(f"clip must be None or a finite number > 0, got {clip!r}")
        clip = float(clip)
        if not math.isfinite(clip) or clip <= 0:
            raise ValueError(f"clip must be None or a finite number > 0, got {clip!r}")
    input_forget = bool(input_forget)
    if input_forget:
        both = [a for a in ("input_gate", "forget_gate") if a in names]
        if both:
            raise ValueError(f"input_forget=True couples f = 1 - i and needs both gates, "
                             f"but ablate has {both}")
    return input_forget, clip, names
