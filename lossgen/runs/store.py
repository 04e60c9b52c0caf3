"""Run directories: what a search run has done, in a form that survives `kill -9`.

A run directory holds
    config.json            the run's configuration (written once; a resume must match it)
    run.db                 SQLite in WAL mode: one row per candidate and per completed round
    checkpoints/round-N.pt the state after round N (strategy, every RNG, counters)
    checkpoints/model-M.pt the recommender as it was after round M; round checkpoints name theirs.
                           It is written only in the rounds where the recommender changes: most
                           rounds of a long search move nothing, and the recommender is the bulk
                           of a checkpoint (its size grows with the user and item tables)

Crash safety rests on one commit point per round. `commit_round` first writes the round's
checkpoint atomically (temp file + fsync + rename), then inserts the round's candidates and its
round row in a single SQLite transaction. A kill before that transaction leaves the previous
round as the last completed one, and its checkpoint is still on disk (the last `keep` are kept,
with the model files they name), so a resumed run redoes the interrupted round from the same
state: nothing recorded is lost and no completed round is repeated.
"""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from lossgen.runs.records import (COLUMNS, EVALUATED_STATES, CandidateRecord, CandidateState, RoundRecord,
                                  RunSnapshot, best_passing, distinct_evaluated)
from lossgen.util.atomic import write_bytes_atomic, write_text_atomic

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    finished_at REAL NOT NULL,
    info TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    id TEXT PRIMARY KEY,
    round INTEGER NOT NULL REFERENCES rounds(round),
    program TEXT NOT NULL,
    formula TEXT NOT NULL,
    fingerprint TEXT,
    strategy TEXT NOT NULL,
    proxy TEXT NOT NULL,
    duplicate_of TEXT,
    reward REAL,
    accepted INTEGER NOT NULL DEFAULT 0,
    evaluation INTEGER,
    validation REAL,
    train_loss REAL,
    note TEXT,
    phase2_rate REAL,
    phase3 TEXT
);
CREATE INDEX IF NOT EXISTS candidates_round ON candidates(round);
"""

# The columns are those of `CandidateRecord` (lossgen.runs.records); `proxy` holds its state.
CANDIDATE_FIELDS = COLUMNS
_SELECT = f"SELECT {', '.join(CANDIDATE_FIELDS)} FROM candidates"
_EVALUATED = f"proxy IN ({', '.join(repr(s.value) for s in EVALUATED_STATES)})"


class RunError(ValueError):
    """A run directory that cannot be used as asked; the message names the problem."""


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    keys = sorted(set(old) | set(new))
    diffs = []
    for key in keys:
        name = f"{prefix}{key}"
        a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(config_differences(a, b, f"{name}."))
        elif a != b:
            diffs.append(name)
    return diffs


@dataclass
class Checkpoint:
    round: int
    state: dict[str, Any]


class RunStore:
    """One run directory. Use `RunStore.open_or_create(path, config)`."""

    def __init__(self, path: Path, config: dict, db: sqlite3.Connection, keep: int):
        self.path, self.config, self.db, self.keep = path, config, db, keep
        self.readonly = False
        self._model_file: str | None = None  # the model file named by this session's checkpoints
        self._model_of: dict[int, str] = {}  # round -> model file, for the rounds committed this session

    # ------------------------------------------------------------------ opening

    @staticmethod
    def open_or_create(path: str | Path, config: dict, keep: int = 2) -> "RunStore":
        """Create a new run, or reopen an existing one whose config equals `config`."""
        path = Path(path)
        config = json.loads(json.dumps(config))  # normalise (tuples -> lists) as it is stored
        config_file = path / "config.json"
        if config_file.exists():
            stored = _read_config(path, need_db=False)
            diffs = config_differences(stored, config)
            if diffs:
                raise RunError(f"run directory {path} was created with a different config: {', '.join(diffs)} differ")
        elif path.exists() and any(path.iterdir()):
            raise RunError(f"{path} is not empty and is not a lossgen run directory (no config.json)")
        else:
            path.mkdir(parents=True, exist_ok=True)
            write_text_atomic(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
        (path / "checkpoints").mkdir(exist_ok=True)
        try:
            db = sqlite3.connect(path / "run.db", isolation_level=None)  # explicit transactions below
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if version is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(version[0]) != SCHEMA_VERSION:
                raise RunError(f"run directory {path} has schema {version[0]}, this lossgen reads {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            raise RunError(f"corrupted run directory {path}: run.db is unreadable ({err})") from None
        return RunStore(path, config, db, keep)

    @staticmethod
    def open_existing(path: str | Path) -> "RunStore":
        """Reopen a run directory with the config it was created with, to write to it."""
        path = Path(path)
        return RunStore.open_or_create(path, _read_config(path))

    @staticmethod
    def open_readonly(path: str | Path) -> "RunStore":
        """Open a run directory to read it, changing nothing (reports, export, comparisons): a
        read-only SQLite connection, no directory or schema created. Writes raise RunError."""
        path = Path(path)
        config = _read_config(path)
        try:
            db = sqlite3.connect(f"{(path / 'run.db').resolve().as_uri()}?mode=ro", uri=True, timeout=10.0,
                                 isolation_level=None)
            db.execute("SELECT 1 FROM candidates LIMIT 1")
        except sqlite3.Error as err:
            raise RunError(f"corrupted run directory {path}: run.db is unreadable ({err})") from None
        store = RunStore(path, config, db, keep=0)
        store.readonly = True
        return store

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ rounds

    def last_round(self) -> int:
        """The last completed round, or -1 before the first."""
        row = self.db.execute("SELECT MAX(round) FROM rounds").fetchone()
        return -1 if row[0] is None else int(row[0])

    def _checkpoint_path(self, round_: int) -> Path:
        return self.path / "checkpoints" / f"round-{round_:06d}.pt"

    def commit_round(self, round_: int, candidates: Iterable[CandidateRecord], info: dict, state: dict[str, Any],
                     finished_at: float, model: dict[str, Any] | None = None) -> None:
        """Record a completed round: model file (when `model` is given: the recommender changed)
        and checkpoint first, then one transaction for its rows. Without `model`, the checkpoint
        names the last model file written (or holds whatever `state` carries)."""
        self._writable()  # a read-only store writes nothing, checkpoint files included
        if round_ != self.last_round() + 1:
            raise RunError(f"round {round_} does not follow the last completed round {self.last_round()}")
        rows = []  # checked before any file is written
        for c in candidates:
            if c.round != round_:
                raise RunError(f"candidate {c.id} belongs to round {c.round}, not {round_}")
            rows.append(tuple(_encode(v) for v in c.columns().values()))
        if model is not None:
            self._model_file = f"model-{round_:06d}.pt"
            write_bytes_atomic(self.path / "checkpoints" / self._model_file, _serialize(model))
        if self._model_file is not None:
            state = {**state, "model_file": self._model_file}
        write_bytes_atomic(self._checkpoint_path(round_), _serialize({"round": round_, "state": state}))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT INTO rounds VALUES (?, ?, ?)", (round_, finished_at, json.dumps(info)))
            self.db.executemany(f"INSERT INTO candidates ({', '.join(CANDIDATE_FIELDS)}) "
                                f"VALUES ({', '.join('?' * len(CANDIDATE_FIELDS))})", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if self._model_file is not None:
            self._model_of[round_] = self._model_file
        self._remove_old_checkpoints()

    def _remove_old_checkpoints(self) -> None:
        """Keep the last `keep` round checkpoints and the model files they name. Model files only
        get newer with the round, so every file older than the oldest kept checkpoint's can go
        (once that one is known: right after a resume it may have been written by an earlier session)."""
        folder = self.path / "checkpoints"
        rounds = sorted(folder.glob("round-*.pt"))
        for old in rounds[: -self.keep]:
            old.unlink(missing_ok=True)
        kept = [int(p.stem.split("-")[1]) for p in rounds[-self.keep:]]
        self._model_of = {r: f for r, f in self._model_of.items() if r in kept}  # bounded, however long the run
        if not kept or any(r not in self._model_of for r in kept):
            return
        oldest = min(self._model_of[r] for r in kept)
        for old in folder.glob("model-*.pt"):
            if old.name < oldest:
                old.unlink(missing_ok=True)

    def load_checkpoint(self) -> Checkpoint | None:
        """The state after the last completed round (None before the first)."""
        last = self.last_round()
        if last < 0:
            return None
        path = self._checkpoint_path(last)
        try:
            data = torch.load(path, weights_only=False)
        except (OSError, RuntimeError, EOFError) as err:
            raise RunError(f"corrupted run directory {self.path}: checkpoint of round {last} is unreadable ({err})") from None
        state = data["state"]
        if "model_file" in state:  # the recommender lives in its own file
            try:
                model = torch.load(path.parent / state["model_file"], weights_only=False)
            except (OSError, RuntimeError, EOFError) as err:
                raise RunError(f"corrupted run directory {self.path}: model file {state['model_file']} of round "
                               f"{last} is unreadable ({err})") from None
            state = {**{k: v for k, v in state.items() if k != "model_file"}, "model": model}
        return Checkpoint(int(data["round"]), state)

    # ------------------------------------------------------------------ queries and later phases

    def _records(self, where: str = "", params: tuple = ()) -> list[CandidateRecord]:
        rows = self.db.execute(f"{_SELECT} {where} ORDER BY round, rowid", params)
        return [_record(row) for row in rows]

    def candidates(self) -> list[CandidateRecord]:
        """Every candidate, in round and proposal order."""
        return self._records()

    def candidate(self, key: str) -> CandidateRecord:
        """The candidate whose id is `key`, or the only one whose id starts with it; RunError
        names the problem (empty, unknown or ambiguous id)."""
        prefix = key.strip()
        if not prefix:
            raise RunError("empty candidate id")
        found = self._records("WHERE id = ?", (prefix,))
        if not found:
            found = sorted(self._records("WHERE substr(id, 1, ?) = ?", (len(prefix), prefix)), key=lambda r: r.id)
        if not found:
            raise RunError(f"no candidate with id {prefix!r} (or starting with it) in {self.path}")
        if len(found) > 1:
            shown = ", ".join(r.id for r in found[:5]) + (f", and {len(found) - 5} more" if len(found) > 5 else "")
            raise RunError(f"candidate id {prefix!r} is ambiguous: {len(found)} candidates match ({shown})")
        return found[0]

    def evaluated(self, through_round: int | None = None) -> list[CandidateRecord]:
        """Candidates that were trained and scored (the many duplicates are not read)."""
        if through_round is None:
            return self._records(f"WHERE {_EVALUATED}")
        return self._records(f"WHERE {_EVALUATED} AND round <= ?", (through_round,))

    def distinct_evaluated(self) -> list[CandidateRecord]:
        return distinct_evaluated(self.evaluated())

    def best_passing(self, top: int, budget: int | None = None) -> list[CandidateRecord]:
        """The `top` best distinct candidates that passed the run's Phase II, by search reward."""
        phase2 = self.get_meta("phase2")
        if phase2 is None:
            raise RunError(f"run {self.path} has no Phase II results: run `lossgen check` on it first")
        return best_passing(self.evaluated(), phase2["threshold"], top, budget)

    def originals(self) -> list[CandidateRecord]:
        """Candidates that are not duplicates and have a fingerprint (the run-wide duplicate memory)."""
        return self._records("WHERE duplicate_of IS NULL AND fingerprint IS NOT NULL")

    def passed_since(self, round_: int) -> list[CandidateRecord]:
        """Candidates after round `round_` that passed the proxy test (the gradient memory of a state)."""
        return self._records("WHERE round > ? AND proxy = ?", (round_, CandidateState.PASSED.value))

    def unrated(self) -> int:
        """How many candidates have no Phase II rate yet."""
        return int(self.db.execute("SELECT COUNT(*) FROM candidates WHERE phase2_rate IS NULL").fetchone()[0])

    def rounds(self) -> list[RoundRecord]:
        return [RoundRecord(r, t, _json_object(info))
                for r, t, info in self.db.execute("SELECT round, finished_at, info FROM rounds ORDER BY round")]

    def meta(self) -> dict[str, Any]:
        return {key: _json_or_text(value) for key, value in self.db.execute("SELECT key, value FROM meta ORDER BY key")}

    def snapshot(self) -> RunSnapshot:
        """Config, rounds, candidates and meta from one read transaction: whole rounds only, even
        while a search writes to the run."""
        try:
            self.db.execute("BEGIN")
            try:
                meta, rounds, candidates = self.meta(), self.rounds(), self.candidates()
            finally:
                self.db.execute("COMMIT")
        except (sqlite3.Error, ValueError, TypeError) as err:
            raise RunError(f"corrupted run directory {self.path}: run.db is unreadable ({err})") from None
        return RunSnapshot(self.path, self.config, tuple(rounds), tuple(candidates), meta)

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under `key` (run-level facts: limits used, initial metrics, phase results)."""
        self._writable()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_phase2(self, rates: dict[str, float]) -> None:
        self._update_many("phase2_rate", rates)

    def set_phase3(self, results: dict[str, dict]) -> None:
        self._update_many("phase3", {k: json.dumps(v) for k, v in results.items()})

    def _update_many(self, column: str, values: dict[str, Any]) -> None:
        self._writable()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(f"UPDATE candidates SET {column} = ? WHERE id = ?",
                                [(v, k) for k, v in values.items()])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise


    def _writable(self) -> None:
        if self.readonly:
            raise RunError(f"run {self.path} was opened read-only")


def _read_config(path: Path, need_db: bool = True) -> dict:
    if not (path / "config.json").is_file() or (need_db and not (path / "run.db").is_file()):
        raise RunError(f"{path} is not a lossgen run directory (no config.json and run.db)")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"corrupted run directory {path}: config.json is unreadable ({err})") from None
    if not isinstance(config, dict):
        raise RunError(f"corrupted run directory {path}: config.json is not a JSON object")
    return config


def _json_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _json_object(value: Any) -> dict:
    value = _json_or_text(value)
    return value if isinstance(value, dict) else {}


def _record(row: tuple) -> CandidateRecord:
    values = {f: _decode(f, v) for f, v in zip(CANDIDATE_FIELDS, row)}
    values["state"] = values.pop("proxy")
    values["program"] = values["program"] or ()
    values["accepted"] = bool(values["accepted"])
    return CandidateRecord(**values)


def _serialize(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _encode(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _decode(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in ("program", "phase3"):
        return _json_or_text(value)
    if field == "accepted":
        return bool(value)
    return value
