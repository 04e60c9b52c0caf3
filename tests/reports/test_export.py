import ast
import importlib.util
import itertools
import json
import random

import pytest
import torch
from typer.testing import CliRunner

from lossgen import kernels
from lossgen.cli import app
from lossgen.cli.app import PAPER_LOSSES
from lossgen.reports.export import export_candidate, file_stem, latex_source, module_source, write_export
from lossgen.ir.formula import parse, to_infix, to_latex
from lossgen.ir.opset import EXTENDED_OPS, Op
from lossgen.ir.programs import Program
from lossgen.runs import CandidateRecord, RunStore
from lossgen.kernels.verify import SPECIAL_INPUTS, fuzz_inputs, random_program, rounding_envelope

CLAMPS = ["paper", "official", "symmetric"]
_counter = itertools.count()


def load_module(path):
    """Import a generated file from its path, as a user would."""
    spec = importlib.util.spec_from_file_location(f"exported_loss_{next(_counter)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_module(tmp_path, program, clamp):
    py, _ = write_export(program, clamp, tmp_path, f"loss-{next(_counter)}")
    return load_module(py).DiscoveredLoss


def values_and_grads(loss_class, y_hat, y):
    """Per-point values and d/dy_hat of an exported module, by autograd."""
    x = y_hat.clone().requires_grad_(True)
    values = loss_class(reduction="none")(x, y)
    if not values.requires_grad:  # the program never reads y_hat
        return values.detach(), torch.zeros_like(x)
    (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), grad


def assert_matches_kernel(program, y_hat, y, clamp, values, grads, rtol=1e-5, atol=1e-6):
    """lossgen.kernels.verify's rule, with the kernel in place of the reference: every point agrees within
    rtol/atol, or both lie within the float32 rounding envelope of the float64 result."""
    kv, kg = kernels.evaluate([program], y_hat, y, clamp)
    kv, kg = kv[0], kg[0]
    close = torch.isclose(values, kv, rtol=rtol, atol=atol) & torch.isclose(grads, kg, rtol=rtol, atol=atol)
    if bool(close.all()):
        return
    bad = (~close).nonzero().flatten()
    v64, g64, env_v, env_g = rounding_envelope(list(program.steps), y_hat[bad], y[bad], clamp)
    tol_v = atol + rtol * v64.abs() + 2 * env_v
    tol_g = atol + rtol * g64.abs() + 2 * env_g
    for name, (v, g) in {"export": (values, grads), "kernel": (kv, kg)}.items():
        within = ((v[bad].double() - v64).abs() <= tol_v) & ((g[bad].double() - g64).abs() <= tol_g)
        assert bool(within.all()), (name, to_infix(program), clamp, y_hat[bad][~within], y[bad][~within],
                                    v[bad][~within], kv[bad][~within], g[bad][~within], kg[bad][~within])


def special_points():
    """Every special input paired with every other (ties included), plus random points."""
    return fuzz_inputs(torch.Generator().manual_seed(0), len(SPECIAL_INPUTS) ** 2 + 200)


@pytest.mark.parametrize("clamp", CLAMPS)
def test_paper_losses_equal_kernels_and_reference(tmp_path, clamp):
    y_hat, y = special_points()
    for text in PAPER_LOSSES.values():
        program = parse(text)
        values, grads = values_and_grads(export_module(tmp_path, program, clamp), y_hat, y)
        assert_matches_kernel(program, y_hat, y, clamp, values, grads)
        ref_v, ref_g = kernels.reference_evaluate(program.to_tensor()[None], y_hat, y, clamp)
        torch.testing.assert_close(values, ref_v[0], rtol=1e-6, atol=0.0)
        torch.testing.assert_close(grads, ref_g[0], rtol=1e-6, atol=0.0)


def test_random_programs_over_all_clamp_modes(tmp_path):
    rng = random.Random(1)
    y_hat, y = special_points()
    ops = [int(op) for op in EXTENDED_OPS]
    for i in range(300):
        clamp = CLAMPS[i % 3]
        program = Program(random_program(rng, rng.randint(1, 7), ops))
        values, grads = values_and_grads(export_module(tmp_path, program, clamp), y_hat, y)
        assert_matches_kernel(program, y_hat, y, clamp, values, grads)


def test_every_op_at_its_edges(tmp_path):
    # 0, the clamp bounds of every mode, exp's cut-off, and ties of max/min (y_hat == y).
    y_hat = torch.tensor([0.0, 1e-6, -1e-6, 1e-5, 0.3, 0.5, 0.5, 1.0, -2.0, 1e5, 1e6, 2e6, 80.0, 81.0])
    y = torch.tensor([0.0, 1e-6, 0.0, 1e-5, 1.0, 0.5, 0.0, 1.0, -2.0, 1e5, 0.0, 2e6, 80.0, 0.0])
    for op, clamp in itertools.product(Op, CLAMPS):
        for rows in ([(op, 0, 1)], [(Op.NEG, 0, 0), (op, 3, 1)], [(Op.IDENTITY, 0, 0), (op, 3, 0)]):
            program = Program(rows)
            values, grads = values_and_grads(export_module(tmp_path, program, clamp), y_hat, y)
            assert_matches_kernel(program, y_hat, y, clamp, values, grads)


def test_source_is_standalone_and_readable():
    program = parse("max(y_hat, y) * (1 / (y_hat + 1))")
    source = module_source(program, "official", class_name="MaxLoss")
    imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                for alias in node.names}
    assert imported == {"torch"}
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(ast.parse(source)))
    assert "class MaxLoss(torch.nn.Module):" in source
    assert "s3 = _clamp(torch.maximum(y_hat, y))" in source
    assert "s4 = _clamp(y_hat + one)" in source
    for text in ("max(y_hat, y) * (1 / (y_hat + 1))", to_latex(program), "official", "exported", "lossgen"):
        assert text in source
    assert "def _reciprocal" in source and "def _log" not in source and "def _exp" not in source
    assert "formula:  y_hat + y" in module_source(parse("y_hat + y"), formula="  y_hat  +  y ")
    with pytest.raises(ValueError, match="not a Python identifier"):
        module_source(program, class_name="not-a-name")
    with pytest.raises(ValueError, match="unknown clamp mode"):
        module_source(program, clamp="loose")


def test_dead_steps_are_dropped_but_values_kept(tmp_path):
    # Step 0 is dead; the exported code is the canonical program.
    program = Program([(Op.EXP, 1, 0), (Op.ADD, 0, 1), (Op.SQUARE, 4, 0)])
    source = module_source(program)
    assert "_exp" not in source and source.count("_clamp(") == 3  # def + 2 steps
    y_hat, y = special_points()
    values, grads = values_and_grads(export_module(tmp_path, program, "paper"), y_hat, y)
    assert_matches_kernel(program, y_hat, y, "paper", values, grads)


def test_reductions_broadcasting_and_constant_slot(tmp_path):
    program = parse("(y_hat - y)^2")
    loss_class = export_module(tmp_path, program, "symmetric")
    y_hat, y = torch.rand(2, 50, generator=torch.Generator().manual_seed(3)), torch.tensor([0.0, 1.0] * 25)
    per_point = loss_class(reduction="none")(y_hat, y)
    assert per_point.shape == (2, 50)
    torch.testing.assert_close(per_point, (y_hat - y) ** 2)
    torch.testing.assert_close(loss_class()(y_hat, y), per_point.mean())
    torch.testing.assert_close(loss_class(reduction="sum")(y_hat, y), per_point.sum())
    torch.testing.assert_close(loss_class()(y_hat, y.long()), per_point.mean())  # integer labels
    with pytest.raises(ValueError, match="reduction must be"):
        loss_class(reduction="avg")
    # The constant 1 takes the broadcast shape of the inputs, also where it is all a loss reads.
    constant = export_module(tmp_path, Program([(Op.IDENTITY, 2, 0)]), "paper")
    assert constant(reduction="none")(torch.rand(7), torch.tensor(1.0)).shape == (7,)
    offset = export_module(tmp_path, parse("y + 1"), "paper")
    out = offset(reduction="none")(torch.rand(3, 1), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0]] * 3))
    # A batch loss that trains: the mean's gradient is the per-point derivative over N.
    x = torch.rand(64, requires_grad=True)
    target = (torch.rand(64) < 0.5).float()
    loss_class()(x, target).backward()
    _, grads = kernels.evaluate([program], x.detach(), target, "symmetric")
    torch.testing.assert_close(x.grad, grads[0] / 64)


def test_latex_file_and_names(tmp_path):
    program = parse(PAPER_LOSSES["SumR"])
    py, tex = write_export(program, "paper", tmp_path / "out", "rl-12-ab34cd")
    assert py == tmp_path / "out" / "rl_12_ab34cd.py" and tex == tmp_path / "out" / "rl_12_ab34cd.tex"
    text = tex.read_text()
    assert text == latex_source(program)
    assert "\\begin{equation}" in text and "\\end{equation}" in text
    assert to_latex(program) in text and to_infix(program) in text
    assert py.read_text() == module_source(program, "paper")
    assert [file_stem(n) for n in ("rl-12-ab34cd", "7x", "class", "a.b/c", "")] == \
        ["rl_12_ab34cd", "loss_7x", "class_", "a_b_c", "loss"]


# ----------------------------------------------------------------------------- run directories


def make_run(path, clamp="symmetric"):
    config = {"strategy": "rl", "seed": 0} if clamp is None else {"strategy": "rl", "seed": 0, "clamp": clamp}
    store = RunStore.open_or_create(path, config)
    rows = []
    for cid, text in [("rl-0-aa11", "(y_hat - y)^2"), ("rl-0-aa22", PAPER_LOSSES["MaxR"]),
                      ("rl-1-bb33", "-log(y_hat) * y")]:
        program = parse(text)
        rows.append(CandidateRecord(id=cid, round=0, program=program.steps, formula=text, strategy="rl",
                                    state="passed"))
    store.commit_round(0, rows, {}, {}, 0.0)
    store.close()
    return path


def test_export_candidate_from_a_run(tmp_path):
    run = make_run(tmp_path / "run")
    py, tex = export_candidate(run, "rl-1")  # a unique prefix
    assert py == run / "export" / "rl_1_bb33.py" and tex.exists()
    loss_class = load_module(py).DiscoveredLoss
    assert loss_class.clamp == "symmetric" and loss_class.formula == "-log(y_hat) * y"
    y_hat, y = special_points()
    values, grads = values_and_grads(loss_class, y_hat, y)
    assert_matches_kernel(parse("-log(y_hat) * y"), y_hat, y, "symmetric", values, grads)
    # An exact id that is also a prefix of nothing else, and an explicit out directory.
    py2, _ = export_candidate(run, "rl-0-aa22", tmp_path / "elsewhere")
    assert py2 == tmp_path / "elsewhere" / "rl_0_aa22.py"
    # No clamp in the config: paper.
    assert load_module(export_candidate(make_run(tmp_path / "old", clamp=None), "rl-0-aa11")[0]).DiscoveredLoss.clamp == "paper"


def test_export_candidate_errors(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(ValueError, match=r"ambiguous: 2 candidates match \(rl-0-aa11, rl-0-aa22\)"):
        export_candidate(run, "rl-0")
    with pytest.raises(ValueError, match="ambiguous: 3 candidates"):
        export_candidate(run, "rl")
    with pytest.raises(ValueError, match="no candidate with id 'zz'"):
        export_candidate(run, "zz")
    with pytest.raises(ValueError, match="no candidate"):
        export_candidate(run, "rl_0")  # no LIKE wildcards
    with pytest.raises(ValueError, match="empty candidate id"):
        export_candidate(run, " ")
    with pytest.raises(ValueError, match="does not exist"):
        export_candidate(tmp_path / "missing", "rl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a lossgen run directory"):
        export_candidate(tmp_path / "empty", "rl")
    bad_config = make_run(tmp_path / "badconfig")
    (bad_config / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted run directory .*config.json is unreadable"):
        export_candidate(bad_config, "rl-1")
    (bad_config / "config.json").write_text(json.dumps({"clamp": "loose"}))
    with pytest.raises(ValueError, match="config.json is unusable .*unknown clamp mode"):
        export_candidate(bad_config, "rl-1")
    bad_db = make_run(tmp_path / "baddb")
    for f in bad_db.glob("run.db*"):
        f.unlink()
    (bad_db / "run.db").write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="run.db is unreadable"):
        export_candidate(bad_db, "rl-1")
    assert not (run / "export").exists()


# ----------------------------------------------------------------------------- command line

runner = CliRunner()


def test_cli_export(tmp_path):
    run = make_run(tmp_path / "run")
    result = runner.invoke(app, ["export", str(run), "rl-0-aa2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "out" / "rl_0_aa22.py") in result.output
    assert str(tmp_path / "out" / "rl_0_aa22.tex") in result.output
    assert to_infix(parse(PAPER_LOSSES["MaxR"])) in result.output
    assert load_module(tmp_path / "out" / "rl_0_aa22.py").DiscoveredLoss.clamp == "symmetric"
    for args, message in [
        ([str(run), "nope"], "no candidate with id 'nope'"),
        ([str(run), "rl-0"], "ambiguous"),
        ([str(tmp_path / "missing"), "rl"], "does not exist"),
    ]:
        result = runner.invoke(app, ["export", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("eps", [1e-2, 0.5])
def test_exported_losses_with_a_smoothing_epsilon_equal_the_reference(tmp_path, eps):
    """The file carries the candidate's e: its values and autograd derivatives are those of the
    kernels' reference with the same eps (sign(0) = +1), x = 0 and the clamp bounds included."""
    y_hat, y = special_points()
    rng = random.Random(3)
    programs = [parse("max(y_hat * (1 / y), y * (1 / y_hat))"), parse("log(y_hat) * y + sqrt(-y_hat)")]
    smoothed = [int(op) for op in (Op.LOG, Op.RECIPROCAL, Op.SQRT)]
    programs += [Program(random_program(rng, rng.randint(2, 7), [int(op) for op in EXTENDED_OPS] + smoothed * 3))
                 for _ in range(60)]
    for i, program in enumerate(programs):
        clamp = CLAMPS[i % 3]
        py, tex = write_export(program, clamp, tmp_path, f"eps-{next(_counter)}", eps=eps)
        module = load_module(py).DiscoveredLoss
        values, grads = values_and_grads(module, y_hat, y)
        ref_v, ref_g = kernels.reference_evaluate(program.to_tensor()[None], y_hat, y, clamp, eps=eps)
        torch.testing.assert_close(values, ref_v[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads, ref_g[0], rtol=1e-5, atol=1e-6)
        assert module.eps == pytest.approx(eps)
        if program.ops() & {Op.LOG, Op.RECIPROCAL, Op.SQRT}:
            assert f"with e = {eps:g}" in module.formula and r"\epsilon" in tex.read_text()


def test_formulas_carry_their_epsilon():
    from lossgen.ir import parse_loss, with_epsilon

    program, eps = parse_loss("max(y_hat * (1 / y), y * (1 / y_hat)) with e = 0.01")
    assert eps == pytest.approx(0.01) and program == parse("max(y_hat * (1 / y), y * (1 / y_hat))")
    assert with_epsilon(to_infix(program), eps) == "max(y_hat * (1 / y), y * (1 / y_hat)) with e = 0.01"
    assert parse_loss("y_hat - y") == (parse("y_hat - y"), None)
    for bad in ("y_hat with e = 0", "y_hat with e = -1", "y_hat with e = inf", "y_hat with e = x"):
        with pytest.raises(ValueError, match="epsilon"):
            parse_loss(bad)
    source = module_source(program, "symmetric", eps=0.01)
    assert "EPS = 0.01" in source and "XI =" not in source
    assert "XI =" in module_source(program, "symmetric") and "eps = None" in module_source(program, "symmetric")
