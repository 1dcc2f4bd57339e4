"""nnctl: deep learning from first principles on NumPy, driven by YAML experiments."""

import os as _os

# OpenBLAS's idle worker threads spin for about 0.1 s (2**28 cycles) after each matrix
# product before they sleep. nnctl's own threads (nnctl.threads) run the elementwise
# pass that follows the decoder's product, and a spinning BLAS thread takes half of a
# core from them: in a training loop of the book-size LM that pass took 17.7-21.5 ms per
# step with the default spin and 11.6-12.8 ms at 2**20 cycles (about 0.4 ms, which still
# covers the gaps between an LSTM's per-step products); measured with
# `OPENBLAS_THREAD_TIMEOUT=T python3 benchmarks/step_parts.py lm_book` for T = 28, 20. This only works
# before NumPy loads OpenBLAS, which the `nnctl` command guarantees; an
# OPENBLAS_THREAD_TIMEOUT of your own is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

__version__ = "0.1.0"
