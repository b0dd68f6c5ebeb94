"""A frozen copy of npylstm.LSTM as of commit c6dfe56, the last commit before the variants.

Read-only: do not edit, format or "fix" anything in this folder. It is the
reference that tests/test_variants_default.py runs next to the current
npylstm.LSTM, in the same process, to check that the default path (no variant
option given) is still bit-for-bit the code of c6dfe56.

Only what LSTM's forward and backward need is here. ``lstm.py``, ``module.py``
and ``functional/layer.py`` are byte-for-byte ``git show c6dfe56:npylstm/<file>``
(their imports were already relative); the test checks their git blob ids, so
an edit here fails it. The two ``__init__.py`` files are new and import only
those files.
"""
from .lstm import LSTM

__all__ = ["LSTM"]
