"""The exception the backends raise for out-of-range input, before the API locates it."""


class InvalidValues(ValueError):
    """A backend saw a NaN, an infinity or (for ``mu``) a value outside [0, 1].

    Backends detect; :mod:`fastcov.api` turns this into a plain ``ValueError`` whose
    message names the first offending position.

    Parameters
    ----------
    array : str
        Which input held the bad value: ``"mu"`` or ``"dmu"``.
    index, value : int and float, optional
        The flat (C-order) index of the first bad entry of the backend's array and its
        value, when the backend found them (the CUDA backend does, on the device); else the
        API finds them in the host copy.
    """

    def __init__(self, array: str, index: int | None = None, value: float | None = None):
        super().__init__(f"invalid values in {array}")
        self.array = array
        self.index = index
        self.value = value
