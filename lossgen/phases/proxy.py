"""The proxy test (paper §4.1.2) and the run-wide duplicate memory, for Phase I.

The proxy test works on a fixed training batch B: the recommender's parameter gradient under a
loss f is J^T g (J the prediction Jacobian on B, g = f'(y_hat_B, y_B) / |B|), so its norm and the
distances between candidates follow from the |B| x |B| Gram matrix J J^T
(`lossgen.models.jacobian`). Norm < delta: zero gradient. Within delta of a candidate already
scored on the same recommender state: duplicate.

The fingerprint (d f / d y_hat on a fixed probe grid of (y_hat, y)) is model-independent: it
remembers duplicates across the whole run.
"""

from __future__ import annotations

import hashlib
import math

import torch

from lossgen import kernels
from lossgen.ir.programs import Program, batch
from lossgen.training.equivalence import PROBE_Y, PROBE_Y_HAT  # the fingerprint's probe grid


def fingerprints(grads: torch.Tensor) -> list[str]:
    """16 hex digits per row of d f / d y_hat on the probe grid, rounded to 5 significant digits
    so that equal functions computed in a different order still agree."""
    rows = (grads.double() + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
    return [hashlib.sha1(",".join(f"{v:.4e}" for v in row).encode()).hexdigest()[:16] for row in rows]


def probe_fingerprints(programs: list[Program], clamp, eps_grid: tuple[float, ...] = ()) -> list[str]:
    """The fingerprints of `programs` (one compiled kernel call per epsilon). With an epsilon grid
    a fingerprint covers the program at every epsilon of the grid: it identifies the family of
    functions Phase I tries, so two programs that agree at every grid value are one loss."""
    programs_t = batch(programs)
    if not eps_grid:
        _, probe = kernels.evaluate(programs_t, PROBE_Y_HAT, PROBE_Y, clamp)
        return fingerprints(probe)
    probes = [kernels.evaluate(programs_t, PROBE_Y_HAT, PROBE_Y, clamp, float(e))[1] for e in eps_grid]
    return fingerprints(torch.cat(probes, dim=1))


class GradientMemory:
    """Proxy gradients of the candidates scored on the current recommender state, in the
    coordinates where distances are Euclidean (h = g V sqrt(w) for G = V diag(w) V^T)."""

    def __init__(self, gram: torch.Tensor):
        w, v = torch.linalg.eigh(gram)
        self.transform = v * w.clamp_min(0).sqrt()
        self.h = torch.empty(0, gram.shape[0], dtype=torch.float64)
        self.ids: list[str] = []

    def coords(self, g: torch.Tensor) -> torch.Tensor:
        return g.double() @ self.transform

    def add(self, h: torch.Tensor, cid: str) -> None:
        self.h = torch.cat([self.h, h.unsqueeze(0)])
        self.ids.append(cid)

    def nearest(self, h: torch.Tensor) -> tuple[str | None, float]:
        if not self.ids:
            return None, math.inf
        d = torch.linalg.vector_norm(self.h - h, dim=1)
        k = int(torch.argmin(d))
        return self.ids[k], float(d[k])


def proxy_gradients(programs: list[Program], y_hat: torch.Tensor, labels: torch.Tensor, clamp,
                    eps=None) -> torch.Tensor:
    """g = d f / d y_hat on the proxy batch, divided by |B| (the batch loss is a mean): [K, |B|].
    `eps`: the candidates' smoothing epsilons, as `lossgen.kernels.evaluate` takes them."""
    _, grads = kernels.evaluate(batch(programs), y_hat, labels, clamp, eps)
    return grads / len(labels)
