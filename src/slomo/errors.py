"""The one family of errors slomo raises on purpose, so callers catch ``slomo.SlomoError``.

The command line maps them to exit statuses: :class:`UsageError` is 2 (the request is wrong),
the others fail one input (status 1) while a batch goes on.  Messages name the file and the value
at fault, never a command-line flag: the same words serve the Python API.
"""

from __future__ import annotations


class SlomoError(Exception):
    """Base of every error slomo reports to its user in one line."""


class UsageError(SlomoError, ValueError):
    """The request itself is wrong: an unknown model, a value out of range, options that clash."""


class MediaError(SlomoError):
    """An input or output problem: unreadable, missing, not a video, not writable."""


class WeightsError(SlomoError):
    """A checkpoint is missing, damaged, or does not fit its model."""


class ClusterError(SlomoError, RuntimeError):
    """The cluster could not run a task: no connection, or its worker or node was lost for good."""
