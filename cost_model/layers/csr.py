"""Sparse row-compressed patterns with the two kernels graph attention needs.

Relation-masked attention on a DAG touches ~10 of the N keys of each query.
Dense ``[B, H, N, N]`` scores (or gathering a key copy per pair) spend most of
the CPU time on memory traffic, so attention runs on a fixed sparsity pattern:
``sddmm`` computes one dot product per pattern entry and ``spmm`` aggregates
weighted rows, both through torch's CSR kernels. torch's own autograd for
those ops densifies the gradient (an ``[rows, rows]`` tensor), so both
functions carry a hand-written backward that stays sparse.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["CSRPattern", "sddmm", "spmm"]


@dataclass(frozen=True, eq=False)
class CSRPattern:
    """The positions of a sparse ``[num_rows, num_cols]`` matrix, rows sorted, columns sorted per row.

    The transposed layout (needed by backward passes only) is derived on first use.

    Shapes:
        ``crow``: ``(num_rows + 1,)``; ``col`` and ``row``: ``(nnz,)``.
    """

    crow: Tensor
    col: Tensor
    row: Tensor
    num_rows: int
    num_cols: int
    tiled_from: "CSRPattern | None" = field(default=None, repr=False)

    @classmethod
    def from_coo(cls, row: Tensor, col: Tensor, num_rows: int, num_cols: int) -> "CSRPattern":
        """Build from entries already sorted by ``(row, col)`` without duplicates."""
        row, col = row.long(), col.long()
        return cls(_crow(row, num_rows), col, row, num_rows, num_cols)

    @property
    def nnz(self) -> int:
        return int(self.col.numel())

    @cached_property
    def transposed(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(crow_t, col_t, perm_t)`` of the transpose; its values are ``values[perm_t]``."""
        if self.tiled_from is not None:
            base = self.tiled_from
            times = self.num_rows // base.num_rows
            crow_t, col_t, perm_t = base.transposed
            return (
                _tile_crow(crow_t, times, base.nnz), _tile(col_t, times, base.num_rows), _tile(perm_t, times, base.nnz)
            )
        perm_t = torch.argsort(self.col * max(self.num_rows, 1) + self.row)
        return _crow(self.col, self.num_cols), self.row[perm_t], perm_t

    def repeat_diagonal(self, times: int) -> "CSRPattern":
        """``times`` copies on the block diagonal: one pattern for all attention heads at once."""
        if times == 1:
            return self
        return CSRPattern(
            _tile_crow(self.crow, times, self.nnz), _tile(self.col, times, self.num_cols),
            _tile(self.row, times, self.num_rows), self.num_rows * times, self.num_cols * times, tiled_from=self,
        )

    def to(self, device: torch.device) -> "CSRPattern":
        """This pattern on ``device``. Its transpose is derived first, here on the CPU, since that
        derivation (numpy) cannot read device memory; a CPU pattern is returned as it is."""
        if device.type == "cpu":
            return self
        crow_t, col_t, perm_t = self.transposed
        moved = CSRPattern(self.crow.to(device), self.col.to(device), self.row.to(device), self.num_rows,
                           self.num_cols)
        moved.__dict__["transposed"] = (crow_t.to(device), col_t.to(device), perm_t.to(device))
        return moved

    def tensor(self, values: Tensor, *, transpose: bool = False) -> Tensor:
        """A torch sparse CSR tensor holding ``values`` (given in this pattern's entry order)."""
        if transpose:
            crow, col, perm_t = self.transposed
            shape, values = (self.num_cols, self.num_rows), values[perm_t]
        else:
            crow, col, shape = self.crow, self.col, (self.num_rows, self.num_cols)
        with warnings.catch_warnings():  # "sparse CSR support is in beta" is noise here
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


# Index construction runs in numpy: these are single passes over int arrays, where torch's
# two-thread kernels cost more in synchronisation than the work (worst on a busy machine).

def _tile(index: Tensor, times: int, step: int) -> Tensor:
    base = index.numpy()
    return torch.from_numpy((base[None, :] + np.arange(times, dtype=base.dtype)[:, None] * step).reshape(-1))


def _tile_crow(crow: Tensor, times: int, nnz: int) -> Tensor:
    return torch.cat([_tile(crow[:-1], times, nnz), crow.new_tensor([nnz * times])])


def _crow(row: Tensor, num_rows: int) -> Tensor:
    crow = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row.numpy(), minlength=num_rows), out=crow[1:])
    return torch.from_numpy(crow)


def _sddmm(pattern: CSRPattern, a: Tensor, b: Tensor) -> Tensor:
    if pattern.nnz == 0:
        return a.new_zeros(0)
    template = pattern.tensor(a.new_zeros(pattern.nnz))
    return torch.sparse.sampled_addmm(template, a, b.t(), beta=0.0).values()


def _spmm(pattern: CSRPattern, values: Tensor, x: Tensor, *, transpose: bool = False) -> Tensor:
    rows = pattern.num_cols if transpose else pattern.num_rows
    if pattern.nnz == 0:
        return x.new_zeros(rows, x.shape[1])
    return torch.sparse.mm(pattern.tensor(values, transpose=transpose), x)


class _SDDMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pattern: CSRPattern, a: Tensor, b: Tensor) -> Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(a, b)
        return _sddmm(pattern, a, b)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor | None, Tensor | None]:
        a, b = ctx.saved_tensors
        grad = grad.contiguous()
        grad_a = _spmm(ctx.pattern, grad, b) if ctx.needs_input_grad[1] else None
        grad_b = _spmm(ctx.pattern, grad, a, transpose=True) if ctx.needs_input_grad[2] else None
        return None, grad_a, grad_b


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pattern: CSRPattern, values: Tensor, x: Tensor) -> Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(values, x)
        return _spmm(pattern, values, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor | None, Tensor | None]:
        values, x = ctx.saved_tensors
        grad = grad.contiguous()
        grad_values = _sddmm(ctx.pattern, grad, x) if ctx.needs_input_grad[1] else None
        grad_x = _spmm(ctx.pattern, values, grad, transpose=True) if ctx.needs_input_grad[2] else None
        return None, grad_values, grad_x


def sddmm(pattern: CSRPattern, a: Tensor, b: Tensor) -> Tensor:
    """``(a @ b.T)`` sampled at the pattern's entries.

    Shapes:
        ``a``: ``(num_rows, K)``, ``b``: ``(num_cols, K)`` -> ``(nnz,)`` in entry order.
    """
    return _SDDMM.apply(pattern, a.contiguous(), b.contiguous())


def spmm(pattern: CSRPattern, values: Tensor, x: Tensor) -> Tensor:
    """``S @ x`` where ``S`` holds ``values`` at the pattern's entries.

    Shapes:
        ``values``: ``(nnz,)``, ``x``: ``(num_cols, K)`` -> ``(num_rows, K)``.
    """
    return _SpMM.apply(pattern, values.contiguous(), x.contiguous())
