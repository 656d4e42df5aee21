"""The one exception type users see.

Everything that is the user's fault (a missing file, a corrupted bundle, an
option out of range) is raised as :class:`NeofieldError` with a one-line
message; the CLI prints that line and exits non-zero instead of a traceback.
"""


class NeofieldError(Exception):
    """A problem with the user's input, explained in one line."""
