"""Export a discovered loss as a standalone PyTorch module (and a LaTeX snippet).

`module_source` generates the text of a Python file that needs only torch: a `torch.nn.Module`
whose forward pass is the program written out step by step, one line per step, with exactly the
ops of `lossgen.kernels.reference` (the definition of the kernels' semantics), so its values and autograd
derivatives are those of `lossgen.kernels.evaluate` in the same clamp mode, edges included.

The exported code is generated from the program's *canonical* form (`Program.canonical`: dead
steps dropped, identical subtrees shared), which computes the same values as the stored program.

`export_candidate` does the same for one candidate of a search run directory, read through
`lossgen.runs.RunStore.open_readonly`.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

import lossgen
from lossgen.util.atomic import file_in_the_way, write_text_atomic
from lossgen.ir.formula import to_infix, to_latex
from lossgen.ir.printers import latex_with_epsilon, with_epsilon
from lossgen.ir.opset import CLAMP_BOUNDS, EXP_INPUT_MAX, N_INPUT_SLOTS, XI, Clamp, Op, parse_clamp
from lossgen.ir.programs import Program
from lossgen.runs import RunStore

__all__ = ["module_source", "latex_source", "write_export", "export_candidate", "load_candidate",
           "file_stem", "Candidate"]

# How each op reads in the generated code ({a}, {b}: operand variables). Helpers named here are
# emitted into the file when a program uses them; each is written exactly as lossgen.kernels.reference
# writes the op, because autograd's derivative at the edges depends on the formulation.
_EXPRESSIONS = {
    Op.ADD: "{a} + {b}",
    Op.MUL: "{a} * {b}",
    Op.MAX: "torch.maximum({a}, {b})",
    Op.MIN: "torch.minimum({a}, {b})",
    Op.NEG: "-{a}",
    Op.IDENTITY: "{a}",
    Op.LOG: "_log({a})",
    Op.SQUARE: "{a} * {a}",
    Op.RECIPROCAL: "_reciprocal({a})",
    Op.SIGMOID: "torch.sigmoid({a})",
    Op.TANH: "torch.tanh({a})",
    Op.RELU: "torch.relu({a})",
    Op.ABS: "torch.abs({a})",
    Op.SQRT: "_sqrt({a})",
    Op.EXP: "_exp({a})",
}

_HELPERS = {
    Op.LOG: '''
def _log(x):
    """Signed log: sign(x) * log(|x| + XI) (derivative 0 at x = 0)."""
    return torch.sign(x) * torch.log(torch.abs(x) + XI)
''',
    Op.RECIPROCAL: '''
def _reciprocal(x):
    """Smoothed reciprocal: sign(x) / (|x| + XI) (derivative 0 at x = 0)."""
    return torch.sign(x) / (torch.abs(x) + XI)
''',
    Op.SQRT: '''
def _sqrt(x):
    """Signed square root: sign(x) * sqrt(|x| + XI) (derivative 0 at x = 0)."""
    return torch.sign(x) * torch.sqrt(torch.abs(x) + XI)
''',
    Op.EXP: '''
def _exp(x):
    """exp(min(x, EXP_MAX)): finite in float32, so a zero gradient is never multiplied by inf."""
    return torch.exp(torch.clamp(x, max=EXP_MAX))
''',
}

# The same three ops with a candidate's smoothing epsilon (DESIGN.md): s(x) = +1 for x >= 0,
# -1 below, and |x| written as x * s(x), exactly as lossgen.kernels.reference writes them, so
# autograd gives the kernels' derivatives (+1 side at x = 0).
_EPS_HELPERS = {
    Op.LOG: '''
def _log(x):
    """Smoothed log: s(x) * log(|x| + EPS), s(x) = +1 for x >= 0 (so log(0) = log(EPS))."""
    s = _sign(x)
    return s * torch.log(x * s + EPS)
''',
    Op.RECIPROCAL: '''
def _reciprocal(x):
    """Smoothed reciprocal: s(x) / (|x| + EPS), s(x) = +1 for x >= 0 (so 1 / 0 = 1 / EPS)."""
    s = _sign(x)
    return s / (x * s + EPS)
''',
    Op.SQRT: '''
def _sqrt(x):
    """Smoothed square root: s(x) * sqrt(|x| + EPS), s(x) = +1 for x >= 0."""
    s = _sign(x)
    return s * torch.sqrt(x * s + EPS)
''',
}
_SIGN_HELPER = '''
def _sign(x):
    """+1 for x >= 0, -1 below; a constant to autograd."""
    return torch.where(x.detach() >= 0, 1.0, -1.0).to(x.dtype)
'''

_CLAMP_NOTES = {
    Clamp.PAPER: "the paper's Table 2",
    Clamp.OFFICIAL: "the authors' released code",
    Clamp.SYMMETRIC: "sign kept, magnitude at most 1/xi",
}


def _variable(slot: int) -> str:
    return ("y_hat", "y", "one")[slot] if slot < N_INPUT_SLOTS else f"s{slot}"


def _step_line(slot: int, op: int, a: int, b: int) -> str:
    expression = _EXPRESSIONS[Op(op)].format(a=_variable(a), b=_variable(b))
    return f"{_variable(slot)} = _clamp({expression})"


def module_source(program: Program, clamp="paper", class_name: str = "DiscoveredLoss",
                  formula: str | None = None, eps: float | None = None) -> str:
    """The text of a standalone Python file (only torch imported) defining ``class <class_name>
    (torch.nn.Module)``: ``forward(y_hat, y)`` is the program's loss, reduced by the module's
    `reduction` ('mean' by default, 'sum' or 'none' for the per-point values). `eps`: the
    candidate's smoothing epsilon (None: the paper's xi with sign(0) = 0); the formula and LaTeX
    in the file carry it."""
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise ValueError(f"class name {class_name!r} is not a Python identifier")
    mode = parse_clamp(clamp)
    lo, hi = CLAMP_BOUNDS[mode]
    canonical = program.canonical()
    formula = with_epsilon(to_infix(canonical), eps) if formula is None else " ".join(formula.split())
    latex = latex_with_epsilon(to_latex(canonical), eps)
    ops = canonical.ops()
    smoothed = bool(ops & {Op.LOG, Op.RECIPROCAL, Op.SQRT})
    for text in (formula, latex):
        if '"""' in text or text.endswith("\\"):
            raise ValueError(f"cannot quote {text!r} in a docstring")

    lines = [
        f'r"""A loss function discovered by lossgen {lossgen.__version__} (AutoLossGen), exported as a',
        "standalone PyTorch module: it needs only torch.",
        "",
        f"    formula:  {formula}",
        f"    LaTeX:    {latex}",
        f"    clamp:    {mode.name.lower()} -- every op result is clamped to [{lo:g}, {hi:g}]",
        f"              ({_CLAMP_NOTES[mode]}); the inputs y_hat and y are not clamped.",
        "",
        "Values and derivatives equal lossgen's compiled kernels for this program: autograd of the",
        "same ops, so log, 1 / x and sqrt have derivative 0 at x = 0, max and min split the",
        "gradient in half at ties, exp reads min(x, 80), and a clamp passes the gradient on its",
        "closed interval.",
        "",
        "Usage:",
        "",
        f"    criterion = {class_name}()  # reduction='mean' (default), 'sum' or 'none'",
        "    loss = criterion(y_hat, y)  # y_hat: predictions in (0, 1); y: labels",
        '"""',
        "",
        "import torch",
        "",
        f"LO, HI = {lo!r}, {hi!r}  # clamp bounds ({mode.name.lower()} mode)",
    ]
    if smoothed and eps is None:
        lines.append(f"XI = {XI!r}  # smoothing of log, 1 / x and sqrt")
    elif smoothed:
        lines.append(f"EPS = {float(eps)!r}  # the candidate's smoothing epsilon of log, 1 / x and sqrt (sign(0) = +1)")
    if Op.EXP in ops:
        lines.append(f"EXP_MAX = {EXP_INPUT_MAX!r}  # exp reads min(x, EXP_MAX)")
    lines += [
        "",
        "",
        "def _clamp(x):",
        '    """Every op result is clamped; the gradient passes on the closed interval [LO, HI]."""',
        "    return torch.clamp(x, LO, HI)",
        "",
    ]
    helpers = {**_HELPERS, **(_EPS_HELPERS if eps is not None else {})}
    if eps is not None and smoothed:
        lines.append(_SIGN_HELPER)
    for op in sorted(ops & helpers.keys()):
        lines.append(helpers[op])
    steps = [_step_line(N_INPUT_SLOTS + t, *row) for t, row in enumerate(canonical.steps)]
    uses_one = any(2 in (a, b) if Op(op).arity == 2 else a == 2 for op, a, b in canonical.steps)
    lines += [
        "",
        f"class {class_name}(torch.nn.Module):",
        f'    r"""{formula}"""',
        "",
        f"    formula = {formula!r}",
        f"    clamp = {mode.name.lower()!r}",
        f"    program = {canonical.steps!r}  # (op code, a, b); step t writes slot 3 + t",
        f"    eps = {None if eps is None else float(eps)!r}  # smoothing epsilon (None: the paper's xi, sign(0) = 0)",
        "",
        '    def __init__(self, reduction: str = "mean"):',
        "        super().__init__()",
        '        if reduction not in ("mean", "sum", "none"):',
        "            raise ValueError(f\"reduction must be 'mean', 'sum' or 'none', got {reduction!r}\")",
        "        self.reduction = reduction",
        "",
        "    def forward(self, y_hat: torch.Tensor, y) -> torch.Tensor:",
        "        values = self.pointwise(y_hat, y)",
        '        if self.reduction == "mean":',
        "            return values.mean()",
        '        if self.reduction == "sum":',
        "            return values.sum()",
        "        return values",
        "",
        "    @staticmethod",
        "    def pointwise(y_hat: torch.Tensor, y) -> torch.Tensor:",
        '        """The loss at every point of the broadcast shape of y_hat and y."""',
        "        y = torch.as_tensor(y, dtype=y_hat.dtype, device=y_hat.device)",
        "        y_hat, y = torch.broadcast_tensors(y_hat, y)",
    ]
    if uses_one:
        lines.append("        one = torch.ones_like(y_hat)")
    lines += [f"        {line}" for line in steps]
    lines.append(f"        return {_variable(canonical.output_slot)}")
    return "\n".join(lines) + "\n"


def latex_source(program: Program, eps: float | None = None) -> str:
    """A LaTeX snippet: the loss in an equation environment (with its smoothing epsilon)."""
    canonical = program.canonical()
    return (
        f"% Loss discovered by lossgen {lossgen.__version__}: {with_epsilon(to_infix(canonical), eps)}\n"
        "\\begin{equation}\n"
        f"  \\mathcal{{L}}(\\hat{{y}}, y) = {latex_with_epsilon(to_latex(canonical), eps)}\n"
        "\\end{equation}\n"
    )


def file_stem(name: str) -> str:
    """A name usable as a Python module file stem: "rl-12-ab34cd" -> "rl_12_ab34cd"."""
    stem = re.sub(r"\W", "_", name.strip(), flags=re.ASCII)
    if not stem:
        return "loss"
    if stem[0].isdigit():
        stem = f"loss_{stem}"
    if keyword.iskeyword(stem):
        stem += "_"
    return stem


def write_export(program: Program, clamp, out_dir: Path, name: str, eps: float | None = None) -> tuple[Path, Path]:
    """Write ``<name>.py`` (the module) and ``<name>.tex`` (the LaTeX) atomically; `name` is
    sanitised into a module file stem. Returns both paths."""
    stem = file_stem(name)
    out_dir = Path(out_dir)
    py_path, tex_path = out_dir / f"{stem}.py", out_dir / f"{stem}.tex"
    write_text_atomic(py_path, module_source(program, clamp, eps=eps))
    write_text_atomic(tex_path, latex_source(program, eps))
    return py_path, tex_path


# ----------------------------------------------------------------------------- run directories


@dataclass(frozen=True)
class Candidate:
    id: str
    program: Program
    clamp: str
    formula: str
    eps: float | None = None  # the smoothing epsilon it was trained with (None: the paper's)


def trained_eps(record) -> float | None:
    """The epsilon of the function a candidate was last trained as: Phase III's choice when it
    reached Phase III, else the one its Phase I scored best with."""
    phase3 = record.phase3 if isinstance(record.phase3, dict) else {}
    eps = phase3.get("eps", record.eps)
    return float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else None


def load_candidate(run_dir: Path, candidate_id: str) -> Candidate:
    """The candidate of a run directory whose id is `candidate_id` or starts with it (a unique
    prefix). ValueError names the problem: no run there, unknown or ambiguous id, bad program."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() and file_in_the_way(run_dir) is None:  # a file in the way: RunStore names it
        raise ValueError(f"run directory {run_dir} does not exist")
    store = RunStore.open_readonly(run_dir)
    try:
        try:
            clamp = parse_clamp(store.config.get("clamp", "paper")).name.lower()
        except ValueError as err:
            raise ValueError(f"corrupted run directory {run_dir}: config.json is unusable ({err})") from None
        record = store.candidate(candidate_id)
    finally:
        store.close()
    try:
        program = Program(record.program)
    except (TypeError, ValueError) as err:
        raise ValueError(f"candidate {record.id} in {run_dir} has an unusable program ({err})") from None
    eps = trained_eps(record)
    return Candidate(record.id, program, clamp, with_epsilon(to_infix(program), eps), eps)


def export_candidate(run_dir: Path, candidate_id: str, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Export one candidate of a run (id or unique id prefix) to ``<out_dir>/<id>.py`` and
    ``.tex``; `out_dir` defaults to ``<run_dir>/export``."""
    candidate = load_candidate(run_dir, candidate_id)
    out_dir = Path(run_dir) / "export" if out_dir is None else Path(out_dir)
    return write_export(candidate.program, candidate.clamp, out_dir, candidate.id, candidate.eps)
