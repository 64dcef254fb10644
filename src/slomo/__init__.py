"""slomo: smoother or slower video by synthesizing the frames in between.

The Python API is :func:`slomo.convert`; the ``slomo`` command is a thin layer over it.
"""

import os

from .errors import MediaError, SlomoError, UsageError, WeightsError

# torch's CPU threads (GNU OpenMP) spin while they wait for work, by default.  In a run they share
# the cores with the decoder, the encoder's threads and the other threads of the pipeline, and a
# spinning thread keeps a working one off its core.  benchmarks/thread_wait.py (RIFE, 2 threads, on
# 2 cores): beside one busy process 0.317 s a frame spinning against 0.244 waiting passively, and
# 3.1 s against 0.40 while a test suite also ran; alone 0.133 against 0.138.  OpenMP reads this
# once, when torch is first imported, so it is set before that; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["convert", "ConvertResult", "SlomoError", "UsageError", "MediaError", "WeightsError"]


def __getattr__(name):
    # Imported lazily so that ``import slomo`` (and ``slomo --help``) does not pay for torch.
    if name in ("convert", "ConvertResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
