"""The one exception type the command line turns into a one-line message."""


class PolyinrError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""
