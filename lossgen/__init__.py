"""lossgen: automatic loss-function discovery for recommender models.

Submodules: `programs` (the loss IR), `formula` (infix/LaTeX/parser), `kernels` (compiled
evaluation), `reference` (plain PyTorch oracle), `search` (strategies). The compiled extension is
loaded by `lossgen.kernels`, not here, so the pure-Python parts import without it.
"""

__version__ = "0.1.0"
