"""nnctl: deep learning from first principles on NumPy, driven by YAML experiments."""

import os as _os

# OpenBLAS's idle worker threads spin for about 0.1 s (2**28 cycles) after each matrix
# product before they sleep, taking half a core from nnctl's own threads (nnctl.threads),
# which run the elementwise pass after the decoder's product. 2**20 cycles (about 0.4 ms)
# still covers the gaps between an LSTM's per-step products (benchmarks/README.md, "Threads
# and noise"). This only works before NumPy loads OpenBLAS, which the `nnctl` command
# guarantees; an OPENBLAS_THREAD_TIMEOUT of your own is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

__version__ = "0.1.0"
