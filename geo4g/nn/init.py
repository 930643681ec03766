"""Weight initialisation by name for every linear and convolution layer of a model."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["INIT_SCHEMES", "init_weights"]

#: The schemes :func:`init_weights` accepts.
INIT_SCHEMES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal")

_NONLINEARITIES = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
_WEIGHTED = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def init_weights(
    module: nn.Module,
    scheme: str = "kaiming_normal",
    *,
    gain: Optional[float] = None,
    nonlinearity: str = "relu",
    generator: Optional[torch.Generator] = None,
) -> nn.Module:
    """Initialise the weight of every ``Linear`` / ``Conv*d`` / ``ConvTranspose*d`` in ``module``; zero their biases.

    Normalisation layers and other parameters are left as they are.

    Args:
        module: the model (or a single layer).
        scheme: one of :data:`INIT_SCHEMES`. ``"orthogonal"`` makes the weight,
            flattened to ``(C_out, fan_in)``, (semi-)orthogonal times ``gain``.
        gain: the scale for the Xavier and orthogonal schemes (default
            ``nn.init.calculate_gain(nonlinearity)``). Kaiming derives its scale from
            ``nonlinearity`` (fan-in mode, zero negative slope) and takes no ``gain``.
        nonlinearity: the activation that follows the layers: one of ``"linear"``,
            ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"selu"``.
        generator: the random generator (default: torch's global one).

    Returns:
        ``module``, initialised in place.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {scheme!r}")
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {', '.join(map(repr, _NONLINEARITIES))}, got {nonlinearity!r}")
    kaiming = scheme.startswith("kaiming")
    if kaiming and gain is not None:
        raise ValueError(f"gain is not used by scheme={scheme!r} (it follows nonlinearity); got gain={gain!r}")
    init = getattr(nn.init, f"{scheme}_")
    kwargs = {"nonlinearity": nonlinearity} if kaiming else {"gain": nn.init.calculate_gain(nonlinearity) if gain is None else gain}
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _WEIGHTED):
                init(m.weight, generator=generator, **kwargs)
                if m.bias is not None:
                    m.bias.zero_()
    return module
