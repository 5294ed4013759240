"""Central finite differences: the independent reference for every gradient test."""

import numpy as np


def central_differences(function, theta, step):
    """d function / d theta, entry by entry: (f(theta + h e) - f(theta - h e)) / 2h."""
    gradient = np.zeros_like(theta)
    for index in np.ndindex(theta.shape):
        up, down = theta.copy(), theta.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (function(up) - function(down)) / (2 * step)
    return gradient
