"""The exception the backends raise for out-of-range input, before the API locates it."""


class InvalidValues(ValueError):
    """A backend saw a NaN, an infinity or (for ``mu``) a value outside [0, 1].

    Backends only detect; :mod:`fastcov.api` finds the first offending position and
    re-raises a plain ``ValueError`` whose message names it.

    Parameters
    ----------
    array : str
        Which input held the bad value: ``"mu"`` or ``"dmu"``.
    """

    def __init__(self, array: str):
        super().__init__(f"invalid values in {array}")
        self.array = array
