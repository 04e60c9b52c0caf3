"""The run directory: the one API that reads and writes it (`RunStore`) and the typed records it
returns (`CandidateRecord`, `CandidateState`, `RoundRecord`, `RunSnapshot`). Nothing else opens
run.db."""

from lossgen.runs.records import (CandidateRecord, CandidateState, RoundRecord, RunSnapshot, best_passing,
                                  distinct_evaluated)
from lossgen.runs.store import Checkpoint, RunError, RunStore, RunWarning, config_differences

__all__ = ["RunStore", "RunError", "RunWarning", "Checkpoint", "config_differences", "CandidateRecord", "CandidateState",
           "RoundRecord", "RunSnapshot", "best_passing", "distinct_evaluated"]
