"""slomo: smoother or slower video by synthesizing the frames in between.

The Python API is :func:`slomo.convert`; the ``slomo`` command is a thin layer over it.
"""

import os

from .errors import MediaError, SlomoError, UsageError, WeightsError

# torch's CPU threads (GNU OpenMP) spin while they wait for work, by default.  In a run they share
# the cores with the decoder, the encoder's threads and the other threads of the pipeline, and a
# spinning thread keeps a working one off its core: on 2 cores with one other busy process, RIFE
# took 2.0 s a frame spinning and 0.25 s waiting passively.  OpenMP reads this once, when torch is
# first imported, so it is set before that; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["convert", "ConvertResult", "SlomoError", "UsageError", "MediaError", "WeightsError"]


def __getattr__(name):
    # Imported lazily so that ``import slomo`` (and ``slomo --help``) does not pay for torch.
    if name in ("convert", "ConvertResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
