"""slomo: smoother or slower video by synthesizing the frames in between.

The Python API is :func:`slomo.convert`; the ``slomo`` command is a thin layer over it.
"""

from . import runtime
from .errors import MediaError, SlomoError, UsageError, WeightsError

# before anything imports torch: OpenMP reads its wait policy once (see slomo.runtime)
runtime.configure()

__version__ = "0.1.0"
__all__ = ["convert", "ConvertResult", "SlomoError", "UsageError", "MediaError", "WeightsError"]


def __getattr__(name):
    # Imported lazily so that ``import slomo`` (and ``slomo --help``) does not pay for torch.
    if name in ("convert", "ConvertResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
