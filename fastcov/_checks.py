"""Checks of scalar arguments shared by the graph, patrol and simulation modules, and
of the paths the commands write to.
"""

import numbers
import operator
import os

import numpy as np


def integer(value, name, minimum=None):
    """``value`` as an int: a Python or NumPy integer (a bool is not one), at least
    ``minimum`` where given.

    Raises
    ------
    TypeError
        Anything but an integer (a float such as 2.0 included, as for NumPy's shapes); an
        array is named by its shape, not printed whole.
    ValueError
        An integer below ``minimum``.
    """
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an integer, not a bool")
    try:
        value = operator.index(value)
    except TypeError:
        got = f"an array of shape {value.shape}" if isinstance(value, np.ndarray) else repr(value)
        raise TypeError(f"{name} must be an integer, got {got}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def real_number(value):
    """Whether ``value`` is a real number: a Python or NumPy int or float (a bool, which is
    one to Python, is not; NumPy's bool is not one to either).
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def random_generator(seed, name="seed"):
    """``numpy.random.default_rng(seed)``, whose errors then name the argument."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name} {seed!r} cannot seed a random generator: {error}") from None


def output_folder(path):
    """Raise ValueError unless the folder that would hold the file ``path`` exists: a
    command checks it before its long work, not after it.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {path}: there is no folder {folder}")
