"""nnctl: deep learning from first principles on NumPy, driven by YAML experiments."""

import os as _os

# OpenBLAS's idle worker threads spin for about 0.1 s (2**28 cycles) after each matrix
# product before they sleep. nnctl's own threads (nnctl.threads) run the elementwise
# pass that follows the decoder's product, and a spinning BLAS thread took half of their
# second core (small LM: that exp pass took 20 ms instead of 13). 2**22 cycles (about
# 1.5 ms) still covers the gaps between an LSTM's per-step products. This only works
# before NumPy loads OpenBLAS, which the `nnctl` command guarantees; an
# OPENBLAS_THREAD_TIMEOUT of your own is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")

__version__ = "0.1.0"
