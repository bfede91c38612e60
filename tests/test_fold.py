"""cifarconv.unfold / fold (im2col / col2im) against F.unfold / F.fold (`cifarconv.testing`'s checks)."""

from __future__ import annotations


from cifarconv.testing import CHECKS, Target
from conftest import check_params


@check_params("unfold")
def test_unfold_matches_torch(param, backend, device):
    CHECKS["unfold"].run(Target(backend, device), param)


@check_params("fold")
def test_fold_matches_torch(param, backend, device):
    CHECKS["fold"].run(Target(backend, device), param)


@check_params("unfold_fold_gradcheck")
def test_unfold_fold_gradcheck_and_gradgradcheck(param, backend, device, interpreted):
    # interpreted kernels: a random projection, as in test_conv2d
    CHECKS["unfold_fold_gradcheck"].run(Target(backend, device, fast_gradcheck=interpreted), param)


def test_fold_is_adjoint_of_unfold(backend, device):
    CHECKS["fold_adjoint"].run(Target(backend, device), None)
