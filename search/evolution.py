"""`evolution`: the genetic-programming baseline, built on DEAP and driven through ask/tell.

Individuals are DEAP `PrimitiveTree`s over the configured ops and the terminals y_hat, y, one.
A tree is a loss as an `Expr`; `lower` turns it into the canonical program, sharing identical
subtrees so that common trees fit the step budget. Trees and canonical programs are in one-to-one
correspondence (`Program.to_expr` expands the sharing again), so `tell` does not need to remember
what it handed out: it rebuilds the tree from the candidate's program, which is also how an
un-asked candidate (a seeded known loss) joins the population.

The scheme is (mu + lambda) with the pipeline owning the loop:
- the first `population_size` asked candidates are ramped half-and-half trees (`genHalfAndHalf`);
- after that, each asked candidate is an offspring of the told population: with probability
  `crossover_prob` one child of `cxOnePoint` on two tournament winners, else `mutUniform` of one;
  both operators are wrapped in `gp.staticLimit` keyed on the lowered program's step count (which
  also bounds the height), so a child that needs more than max_steps steps, or cannot be lowered
  at all (e.g. ``y + y``: a binary op over one input twice), is replaced by its parent; an
  offspring equal to a program in the population or earlier in the same batch is redrawn (up to
  `max_retries` times); initial trees that do not fit are redrawn until they do;
- `tell` merges the told candidates into the population and keeps the best `population_size`
  distinct programs (the better reward wins when a program comes twice). Lambda is simply what
  the pipeline asks for between tells.

With `novelty` on, "known" means every program the strategy has proposed or been told, not just
the population and the batch. An offspring (or initial tree) whose canonical program is known is
replaced by a new offspring (selection and variation again) up to `NOVELTY_ATTEMPTS` // 2 times,
then the last one is mutated again (`mutUniform` under the same step limit) for the remaining
attempts, so that a converged population keeps exploring around its best members; if it is still
known it is replaced by a fresh ramped half-and-half tree (origin "fresh"), proposed even if
known. ``metadata["novelty_attempts"]`` counts the extra attempts, ``metadata["novel"]`` says
whether the proposal was new. This replaces the `max_retries` redraws. (Mutating the known
offspring again from the first attempt, a random walk away from its parents, found far fewer good
distinct programs on the toy reward than the old redraws did, fewer even than novelty off.)

DEAP's operators draw from the global `random` module. Each strategy owns a `random.Random`; the
operators run inside `_private_random`, which swaps that state into the global generator and the
caller's state back out afterwards, under a lock, so the global stream is left as it was.
"""

from __future__ import annotations

import contextlib
import random
import threading
from dataclasses import dataclass
from functools import partial
from typing import Sequence

from deap import base, creator, gp, tools

from lossgen.ir.opset import N_INPUT_SLOTS, Op
from lossgen.ir.expr import Expr
from lossgen.ir.programs import Program
from lossgen.search.base import (
    NOVELTY_ATTEMPTS,
    Candidate,
    Dag,
    StrategyConfig,
    check_n,
    check_program_fits,
    check_strategy_state,
    check_tell_args,
    load_memory,
    memory_state,
    new_memory,
    program_key,
    python_rng_state,
    remember_told,
)

FITNESS_CLASS = "LossgenSearchFitness"
INDIVIDUAL_CLASS = "LossgenSearchIndividual"
TERMINAL_NAMES = ("y_hat", "y", "one")  # DEAP names; the IR's slots 0, 1, 2

_LOWERED_CACHE_SIZE = 100_000
_CREATOR_LOCK = threading.Lock()
_RANDOM_LOCK = threading.RLock()


def _ensure_creator_classes() -> None:
    """DEAP's `creator` is a process-wide registry that warns when a name is created twice."""
    with _CREATOR_LOCK:
        if not hasattr(creator, FITNESS_CLASS):
            creator.create(FITNESS_CLASS, base.Fitness, weights=(1.0,))
        if not hasattr(creator, INDIVIDUAL_CLASS):
            creator.create(INDIVIDUAL_CLASS, gp.PrimitiveTree, fitness=getattr(creator, FITNESS_CLASS))


@contextlib.contextmanager
def _private_random(rng: random.Random):
    with _RANDOM_LOCK:
        outside = random.getstate()
        random.setstate(rng.getstate())
        try:
            yield
        finally:
            rng.setstate(random.getstate())
            random.setstate(outside)


def make_primitive_set(ops: Sequence[Op]) -> gp.PrimitiveSet:
    """Primitives named like the ops' pretty names; each one's function builds the `Expr` node."""
    pset = gp.PrimitiveSet("lossgen_" + "_".join(str(int(op)) for op in ops), 0)
    for op in ops:
        pset.addPrimitive(partial(Expr.apply, op), op.arity, name=op.pretty)
    for slot, name in enumerate(TERMINAL_NAMES):
        pset.addTerminal(slot, name=name)
    return pset


_OP_BY_PRETTY = {op.pretty: op for op in Op}
_TERMINALS = tuple(Expr.terminal(s) for s in range(N_INPUT_SLOTS))
_SLOT_BY_NAME = {name: slot for slot, name in enumerate(TERMINAL_NAMES)}


def tree_to_expr(tree: gp.PrimitiveTree) -> Expr:
    """Walk the prefix-ordered tree; no string is evaluated."""
    stack: list[Expr] = []
    for node in reversed(tree):
        if node.arity == 0:
            stack.append(_TERMINALS[_SLOT_BY_NAME[node.name]])
        else:
            kids = tuple(stack.pop() for _ in range(node.arity))
            stack.append(Expr(_OP_BY_PRETTY[node.name], kids))
    if len(stack) != 1:
        raise ValueError(f"malformed tree {tree}")
    return stack[0]


def expr_to_tree(expr: Expr, pset: gp.PrimitiveSet) -> gp.PrimitiveTree:
    """The individual for `expr` (raises ValueError when an op is not in `pset`)."""
    nodes = []
    todo = [expr]
    while todo:
        node = todo.pop()
        name = TERMINAL_NAMES[node.slot] if node.is_terminal else node.op.pretty
        if name not in pset.mapping:
            raise ValueError(f"op {name} is not in the primitive set")
        nodes.append(pset.mapping[name])
        todo.extend(reversed(node.children))
    _ensure_creator_classes()
    return getattr(creator, INDIVIDUAL_CLASS)(nodes)


_CODE_BY_PRETTY = {op.pretty: int(op) for op in Op}


def tree_to_program(tree: gp.PrimitiveTree) -> Program:
    """``lower(tree_to_expr(tree))``, computed on a hash-consed DAG straight from the prefix
    list (the hot path of breeding). Raises ValueError when the tree cannot be lowered."""
    dag = Dag()
    stack: list[int] = []
    for node in reversed(tree):
        if node.arity == 0:
            stack.append(_SLOT_BY_NAME[node.name])
        else:
            kids = tuple(stack.pop() for _ in range(node.arity))
            stack.append(dag.node(_CODE_BY_PRETTY[node.name], kids))
    if len(stack) != 1:
        raise ValueError(f"malformed tree {tree}")
    return dag.program(stack[0])


@dataclass
class EvolutionConfig(StrategyConfig):
    """(mu + lambda) GP settings; mu is `population_size`, lambda is whatever `ask` is given."""

    population_size: int = 50
    tournament_size: int = 3
    crossover_prob: float = 0.5  # else mutation: every offspring is varied
    init_min_height: int = 1
    init_max_height: int = 3
    mutation_min_height: int = 0
    mutation_max_height: int = 2
    max_retries: int = 10  # novelty off only (with it on: NOVELTY_ATTEMPTS, module docstring)

    def check(self) -> None:
        super().check()
        if self.population_size < 2 or self.tournament_size < 1:
            raise ValueError("population_size must be at least 2 and tournament_size at least 1")
        if not 0.0 <= self.crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob must be in [0, 1], got {self.crossover_prob}")
        if not 0 <= self.init_min_height <= self.init_max_height:
            raise ValueError("need 0 <= init_min_height <= init_max_height")
        if not 0 <= self.mutation_min_height <= self.mutation_max_height:
            raise ValueError("need 0 <= mutation_min_height <= mutation_max_height")


class EvolutionSearch:
    name = "evolution"

    def __init__(self, config: EvolutionConfig | None = None, seed: int = 0):
        self.config = config or EvolutionConfig()
        self.config.check()
        cfg = self.config
        _ensure_creator_classes()
        self._individual = getattr(creator, INDIVIDUAL_CLASS)
        self._ops = cfg.ops()
        self.pset = make_primitive_set(self._ops)
        self._rng = random.Random(seed)
        self._counter = 0
        self._init_issued = 0
        self._population: dict[Program, object] = {}  # told programs -> trees, best first
        self._lowered: dict[tuple[str, ...], Program | None] = {}
        self._memory = new_memory(cfg)

        tb = base.Toolbox()
        tb.register("init_expr", gp.genHalfAndHalf, pset=self.pset, min_=cfg.init_min_height,
                    max_=cfg.init_max_height)
        tb.register("mut_expr", gp.genFull, min_=cfg.mutation_min_height, max_=cfg.mutation_max_height)
        tb.register("select", tools.selTournament, tournsize=cfg.tournament_size)
        tb.register("mate", gp.cxOnePoint)
        tb.register("mutate", gp.mutUniform, expr=tb.mut_expr, pset=self.pset)
        # The size limit in the unit that matters: steps of the lowered program. It implies the
        # height limit too (the op nodes on a root-to-leaf path are distinct subtrees, so
        # distinct steps), and treats trees that cannot be lowered as over the limit.
        for op_name in ("mate", "mutate"):
            tb.decorate(op_name, gp.staticLimit(self._lowered_steps, cfg.max_steps))
        self.toolbox = tb

    def _program(self, tree) -> Program | None:
        """The tree's canonical program, None when it cannot be lowered. Memoised: the same
        trees come back again and again (parents restored by staticLimit, population members)."""
        key = tuple(node.name for node in tree)
        if key not in self._lowered:
            if len(self._lowered) >= _LOWERED_CACHE_SIZE:
                self._lowered.clear()
            try:
                self._lowered[key] = tree_to_program(tree)
            except ValueError:
                self._lowered[key] = None
        return self._lowered[key]

    def _lowered_steps(self, tree) -> int:
        """Steps of the tree's canonical program; one more than allowed when it cannot lower."""
        program = self._program(tree)
        return self.config.max_steps + 1 if program is None else len(program)

    # ------------------------------------------------------------------------------ ask

    def ask(self, n: int) -> list[Candidate]:
        n = check_n(n)
        if self._memory is not None:
            return self._ask_novel(n)
        out: list[Candidate] = []
        taken = set(self._population)
        with _private_random(self._rng):
            for _ in range(n):
                tree, origin = self._offspring()
                program = self._program(tree)
                for _ in range(self.config.max_retries):
                    if program not in taken:
                        break
                    tree, origin = self._offspring()
                    program = self._program(tree)
                taken.add(program)
                cid = f"evolution-{self._counter:07d}-{program_key(program, canonical=True)}"
                out.append(Candidate(program, cid, self.name, {"origin": origin}))
                self._counter += 1
        return out

    def _ask_novel(self, n: int) -> list[Candidate]:
        """`ask` with novelty on (module docstring)."""
        memory = self._memory
        out: list[Candidate] = []
        with _private_random(self._rng):
            for _ in range(n):
                tree, origin = self._offspring()
                program = self._program(tree)
                key = program_key(program, canonical=True)
                attempts = 0
                while key in memory and attempts < NOVELTY_ATTEMPTS:
                    if attempts < NOVELTY_ATTEMPTS // 2:
                        tree, origin = self._offspring()
                    else:
                        (tree,) = self.toolbox.mutate(tree)
                    attempts += 1
                    program = self._program(tree)
                    key = program_key(program, canonical=True)
                if key in memory:
                    tree, origin = self._init_tree(), "fresh"
                    program = self._program(tree)
                    key = program_key(program, canonical=True)
                cid = f"evolution-{self._counter:07d}-{key}"
                out.append(Candidate(program, cid, self.name,
                                     {"origin": origin, "novelty_attempts": attempts, "novel": memory.add(key)}))
                self._counter += 1
        return out

    @property
    def population(self) -> list:
        """The told individuals kept for breeding, best reward first."""
        return list(self._population.values())

    def _offspring(self):
        """One valid tree (its lowering has at most max_steps steps) and how it was made."""
        cfg = self.config
        if self._init_issued < cfg.population_size or not self._population:
            tree = self._init_tree()
            self._init_issued += 1
            return tree, "init"
        population = self.population
        if len(population) >= 2 and random.random() < cfg.crossover_prob:
            first, second = (self._individual(t) for t in self.toolbox.select(population, 2))
            child, _ = self.toolbox.mate(first, second)
            return child, "crossover"
        (parent,) = self.toolbox.select(population, 1)
        (child,) = self.toolbox.mutate(self._individual(parent))
        return child, "mutation"

    def _init_tree(self):
        """A ramped half-and-half tree that fits the step budget (redrawn until one does)."""
        while True:
            tree = self._individual(self.toolbox.init_expr())
            if self._lowered_steps(tree) <= self.config.max_steps:
                return tree

    # ------------------------------------------------------------------------------ tell

    def tell(self, candidates: Sequence[Candidate], rewards: Sequence[float]) -> None:
        rewards = check_tell_args(candidates, rewards)
        best = dict(self._population)
        for cand, reward in zip(candidates, rewards):
            # This strategy's own candidates are canonical already (and cheap to trust).
            program = cand.program if cand.strategy == self.name else cand.program.canonical()
            check_program_fits(program, self._ops, self.config.max_steps)
            ind = expr_to_tree(program.to_expr(), self.pset)
            ind.fitness.values = (reward,)
            old = best.get(program)
            if old is None or old.fitness.values[0] < reward:
                best[program] = ind
        ranked = sorted(best.items(), key=lambda item: item[1].fitness.values[0], reverse=True)
        self._population = dict(ranked[: self.config.population_size])
        remember_told(self._memory, candidates, self.name)

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return memory_state(self._memory, {
            "strategy": self.name,
            "rng": self._rng.getstate(),
            "counter": self._counter,
            "init_issued": self._init_issued,
            "population": [([node.name for node in ind], ind.fitness.values[0]) for ind in self.population],
        })

    def load_state_dict(self, state: dict) -> None:
        check_strategy_state(state, self.name)
        self._rng.setstate(python_rng_state(state["rng"]))
        self._counter = int(state["counter"])
        self._init_issued = int(state["init_issued"])
        population = {}
        for names, fitness in state["population"]:
            ind = self._individual(self.pset.mapping[name] for name in names)
            ind.fitness.values = (float(fitness),)
            population[self._program(ind)] = ind
        self._population = population
        self._memory = load_memory(self._memory, state)
