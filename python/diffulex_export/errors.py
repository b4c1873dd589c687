"""The one exception type the toolkit raises for user-facing problems.

The CLI prints these as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class ExportError(Exception):
    """A problem with the user's checkpoint, options or environment.

    Example:
        >>> raise ExportError("config.json not found in /tmp/x")
        Traceback (most recent call last):
        ...
        diffulex_export.errors.ExportError: config.json not found in /tmp/x
    """
