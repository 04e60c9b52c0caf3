"""The DEAP baseline: tree <-> IR conversion, creator hygiene, limits, the (mu + lambda) loop."""

import importlib
import random
import warnings

import pytest
from deap import creator, gp

from lossgen.ir.formula import parse, to_infix
from lossgen.ir.opset import EXTENDED_OPS, Op
from lossgen.ir.programs import Program, lower
from lossgen.search import create
from lossgen.search import evolution
from lossgen.search.evolution import expr_to_tree, make_primitive_set, tree_to_expr, tree_to_program


def random_trees(pset, count, seed):
    rng = random.Random(seed)
    state = random.getstate()
    random.setstate(rng.getstate())
    try:
        return [gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 4)) for _ in range(count)]
    finally:
        random.setstate(state)


def test_tree_to_ir_to_infix_to_ir_round_trip():
    pset = make_primitive_set(EXTENDED_OPS)
    lowered = 0
    for tree in random_trees(pset, 2000, seed=0):
        expr = tree_to_expr(tree)
        try:
            program = tree_to_program(tree)
        except ValueError:  # e.g. Add(y, y): a binary op over one input twice
            continue
        lowered += 1
        assert parse(to_infix(program)) == program
        assert program.to_expr() == expr or tree.height == 0
        back = expr_to_tree(program.to_expr(), pset)
        assert [n.name for n in back] == [n.name for n in tree] or tree.height == 0
    assert lowered > 1500


def test_fast_tree_lowering_equals_lower_of_the_expr():
    pset = make_primitive_set((Op.ADD, Op.MUL, Op.NEG, Op.SQUARE))  # few ops: many repeats
    for tree in random_trees(pset, 3000, seed=1) + random_trees(make_primitive_set(EXTENDED_OPS), 2000, seed=2):
        try:
            expected = lower(tree_to_expr(tree))
        except ValueError:
            with pytest.raises(ValueError):
                tree_to_program(tree)
            continue
        assert tree_to_program(tree) == expected


def test_known_tree_converts_directly():
    pset = make_primitive_set(EXTENDED_OPS)
    m = pset.mapping
    # Mul(Max(y_hat, y), Reciprocal(Add(y_hat, one)))
    tree = gp.PrimitiveTree([m["Mul"], m["Max"], m["y_hat"], m["y"], m["Reciprocal"], m["Add"], m["y_hat"], m["one"]])
    program = tree_to_program(tree)
    assert to_infix(program) == "max(y_hat, y) * (1 / (y_hat + 1))"
    assert program == parse("max(y_hat, y) * (1 / (y_hat + 1))")


def test_shared_subtrees_fit_the_budget_and_equal_operands_are_invalid():
    pset = make_primitive_set(EXTENDED_OPS)
    strategy = create("evolution", {"max_steps": 3})
    m = pset.mapping
    square = [m["Square"], m["Add"], m["y_hat"], m["y"]]
    # Mul(Square(y_hat + y), Square(y_hat + y)): 5 op nodes, but 3 steps once shared... except
    # that Mul of one slot with itself is not allowed, so the right operand gets its own copy.
    twice = gp.PrimitiveTree([m["Add"]] + square + square)
    assert len(tree_to_program(twice)) == 4
    inner = gp.PrimitiveTree([m["Add"], m["Square"], m["y_hat"], m["Neg"], m["Square"], m["y_hat"]])
    assert len(tree_to_program(inner)) == 3  # Square(y_hat) is shared: 3 steps for 4 op nodes
    assert strategy._lowered_steps(inner) == 3
    same = gp.PrimitiveTree([m["Add"], m["y"], m["y"]])
    with pytest.raises(ValueError):
        tree_to_program(same)
    assert strategy._lowered_steps(same) > 3  # staticLimit treats it as over the limit


def test_creator_classes_are_created_once_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(evolution)
        create("evolution")
        create("evolution", {"op_set": "extended"})
        importlib.reload(evolution)
        evolution.EvolutionSearch()
    assert hasattr(creator, evolution.INDIVIDUAL_CLASS)


def test_first_population_is_ramped_half_and_half_then_offspring():
    strategy = create("evolution", {"population_size": 30}, seed=0)
    first = strategy.ask(30)
    assert {c.metadata["origin"] for c in first} == {"init"}
    strategy.tell(first, [float(len(c.program)) for c in first])
    later = strategy.ask(100)
    assert {c.metadata["origin"] for c in later} == {"crossover", "mutation"}


def test_population_keeps_the_best_distinct_programs():
    strategy = create("evolution", {"population_size": 10}, seed=0)
    cands = strategy.ask(40)
    rewards = [float(i) for i in range(40)]
    strategy.tell(cands, rewards)
    kept = [ind.fitness.values[0] for ind in strategy.population]
    assert len(kept) <= 10 and kept == sorted(kept, reverse=True)
    best_by_program = {}
    for c, r in zip(cands, rewards):
        best_by_program[c.program] = max(r, best_by_program.get(c.program, r))
    assert kept == sorted(best_by_program.values(), reverse=True)[:10]
    assert len({tree_to_program(ind) for ind in strategy.population}) == len(kept)


def test_offspring_within_a_batch_avoid_known_programs():
    strategy = create("evolution", {"population_size": 20}, seed=3)
    first = strategy.ask(20)
    strategy.tell(first, [1.0] * 20)
    kids = strategy.ask(50)
    programs = [c.program for c in kids]
    known = {tree_to_program(ind) for ind in strategy.population}
    assert len(set(programs)) >= 45 and sum(p in known for p in programs) <= 5


def test_trees_are_never_evaluated_as_strings(monkeypatch):
    # gp.compile and PrimitiveTree.from_string are DEAP's string-eval paths: never needed.
    def forbidden(*args, **kwargs):
        raise AssertionError("string evaluation used")

    monkeypatch.setattr(gp, "compile", forbidden)
    monkeypatch.setattr(gp.PrimitiveTree, "from_string", classmethod(forbidden))
    strategy = create("evolution", seed=0)
    for _ in range(5):
        cands = strategy.ask(40)
        strategy.tell(cands, [float(len(c.program)) for c in cands])
    state = strategy.state_dict()
    create("evolution").load_state_dict(state)
    assert isinstance(cands[0].program, Program)
