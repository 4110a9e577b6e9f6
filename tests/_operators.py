"""Small operators shared by the tests (importable because tests/conftest.py puts tests/ on the path)."""

from learnreg.physics.operator import LinearOperator


class Dense(LinearOperator):
    """``x (1, 1, n) -> M x (1, 1, m)`` from a dense matrix; no closed forms (CG prox, no normal_fourier)."""

    def __init__(self, matrix):
        super().__init__((1, 1, matrix.shape[1]), (1, 1, matrix.shape[0]))
        self.matrix = matrix

    def _forward(self, x):
        return (x.flatten(1) @ self.matrix.T).view(x.shape[0], 1, 1, -1)

    def _adjoint(self, y):
        return (y.flatten(1) @ self.matrix).view(y.shape[0], 1, 1, -1)
