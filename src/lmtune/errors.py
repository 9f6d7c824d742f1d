"""User-facing errors: raised for bad input or config, printed as one message without a traceback."""


class LmtuneError(Exception):
    """A problem the user can fix. The message says what is wrong, where (file, row, key) and how to fix it."""


class ParamsError(LmtuneError):
    """params.yaml is missing a key, has an unknown key, a wrong type or an out-of-range value."""


class DataError(LmtuneError):
    """An input data file cannot be used as it is."""


class Interrupted(LmtuneError):
    """Training was stopped by Ctrl-C (SIGINT) or SIGTERM after saving a checkpoint to resume from."""
