"""nnctl: deep learning from first principles on NumPy, driven by YAML experiments."""

import os as _os

# OpenBLAS's idle worker threads spin for about 0.1 s (2**28 cycles) after each matrix
# product before they sleep. nnctl's own threads (nnctl.threads) run the elementwise
# pass that follows the decoder's product, and a spinning BLAS thread takes half of a
# core from them: measured in a training loop of the book-size LM, that pass took 21.6
# ms per step with the default spin and 14.0 ms with almost none. 2**20 cycles (about
# 0.4 ms) still covers the gaps between an LSTM's per-step products. This only works
# before NumPy loads OpenBLAS, which the `nnctl` command guarantees; an
# OPENBLAS_THREAD_TIMEOUT of your own is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

__version__ = "0.1.0"
