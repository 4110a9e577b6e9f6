"""A learned regularizing gradient ``G(x) ~ grad R(x)`` with no value and no prox (pnpReG, RG1, DEQGD, RERG).

The network ``G`` (a DRUNet without noise map in Willingham et al., VISAPP 2024, and
Fermanian et al., 2023) is trained to be the gradient of an unknown regularizer ``R``;
``R`` itself is never available, so only gradient solvers (gradient descent, Nesterov,
Adam, a fixed point of the gradient step) can use it.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from learnreg.regularizers.base import Regularizer, per_sample


class RegularizingGradient(Regularizer):
    """A gradient field ``grad(x) = w * G(x)``, learned, with no ``value`` and no ``prox``.

    Parameters
    ----------
    network : nn.Module or callable
        ``G``: ``(B, C, H, W) -> (B, C, H, W)``, called as ``network(x)``. An
        ``nn.Module`` is put in evaluation mode; its parameters are not touched.
    weight : float or Tensor of shape (B,), optional
        Multiplies ``G(x)``; a ``(B,)`` tensor weights each sample (``sigma_b^2`` of
        problem ``b`` in the GD iteration ``x - eta (D(x) + sigma^2 G(x))``), which the
        scalar algebra ``w * R`` cannot. Default 1.

    Notes
    -----
    ``G`` is not guaranteed to be a conservative field, so there is no objective, and no
    Lipschitz constant is declared: gradient solvers need an explicit step. The gradient
    keeps autograd's graph when ``x`` or the network's parameters require it, so the same
    object serves in an unrolled or differentiated step.

    Examples
    --------
    >>> import torch
    >>> R = RegularizingGradient(lambda x: 2.0 * x, weight=torch.tensor([1.0, 0.5]))
    >>> R.grad(torch.ones(2, 1, 1, 1)).flatten().tolist()
    [2.0, 1.0]
    """

    has_grad = True

    def __init__(self, network: nn.Module | Callable[[Tensor], Tensor], *, weight: float | Tensor | None = None):
        if not callable(network):
            raise TypeError(f"RegularizingGradient needs a network G(x), got {type(network).__name__}")
        if weight is not None:
            if isinstance(weight, Tensor):
                if weight.dim() > 1 or bool((weight < 0).any()):
                    raise ValueError("weight must be a float or a (B,) tensor of values >= 0, got "
                                     f"shape {tuple(weight.shape)}")
            elif weight < 0:
                raise ValueError(f"weight must be >= 0, got {weight}")
        self.network = network.eval() if isinstance(network, nn.Module) else network
        self.weight = weight

    @property
    def name(self) -> str:
        network = type(self.network).__name__ if isinstance(self.network, nn.Module) else "callable"
        return f"RegularizingGradient(learned gradient field {network}, no value)"

    def grad(self, x: Tensor) -> Tensor:
        """``w * G(x)``.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)

        Returns
        -------
        Tensor, shape (B, C, H, W)
        """
        gradient = self.network(x)
        if gradient.shape != x.shape:
            raise ValueError(f"{self.name}: the network returned shape {tuple(gradient.shape)} for input "
                             f"{tuple(x.shape)}; G must map an image to an image of the same shape")
        if self.weight is None:
            return gradient
        weight = self.weight
        if isinstance(weight, Tensor) and weight.dim() == 1 and weight.numel() not in (1, x.shape[0]):
            raise ValueError(f"{self.name}: weight has {weight.numel()} values for a batch of {x.shape[0]}")
        return per_sample(weight, x) * gradient
