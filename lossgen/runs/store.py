"""Run directories: what a search run has done, in a form that survives `kill -9`.

A run directory holds
    config.json            the run's configuration (written once; a resume must match it)
    run.db                 SQLite in WAL mode: one row per candidate and per completed round
    checkpoints/round-N.pt the state after round N (strategy, every RNG, counters)
    checkpoints/model-M.pt the recommender as it was after round M; round checkpoints name theirs.
                           It is written only in the rounds where the recommender changes: most
                           rounds of a long search move nothing, and the recommender is the bulk
                           of a checkpoint (its size grows with the user and item tables)
    .lock                  the lock of the process writing the run, and who that is (lossgen.runs.lock)

Crash safety rests on one commit point per round. `commit_round` first writes the round's
checkpoint atomically (temp file + fsync + rename), then inserts the round's candidates and its
round row in a single SQLite transaction. A kill before that transaction leaves the previous
round as the last completed one, and its checkpoint is still on disk (the last `keep` are kept,
with the model files they name), so a resumed run redoes the interrupted round from the same
state: nothing recorded is lost and no completed round is repeated.

Faults (docs/pipeline.md, "Run directory faults"): a writing store holds the directory's lock
(lossgen.runs.lock); a read-only directory is refused for writing and read through an immutable
SQLite connection; a failed write (disk full, file size limit) leaves the last completed round
intact and no partial file; an unreadable newest checkpoint falls back to the previous kept one,
rolling the database back by that round in one transaction; checkpoints without their database
are refused, never overwritten.
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from lossgen.runs.records import (COLUMNS, EVALUATED_STATES, NEW_COLUMNS, CandidateRecord, CandidateState, RoundRecord,
                                  RunSnapshot, best_passing, distinct_evaluated)
from lossgen.runs import lock
from lossgen.util.atomic import (WriteError, describe, file_in_the_way, read_only_reason, write_bytes_atomic,
                                 write_text_atomic)

SCHEMA_VERSION = 3  # 3: candidates gained eps and phase2_strict (schema 2 is migrated in place)

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
    phase3 TEXT,
    eps REAL,
    phase2_strict REAL
);
CREATE INDEX IF NOT EXISTS candidates_round ON candidates(round);
"""

# The columns are those of `CandidateRecord` (lossgen.runs.records); `proxy` holds its state.
CANDIDATE_FIELDS = COLUMNS
_EVALUATED = f"proxy IN ({', '.join(repr(s.value) for s in EVALUATED_STATES)})"


class RunError(ValueError):
    """A run directory that cannot be used as asked; the message names the problem."""


class RunWarning(UserWarning):
    """Something was repaired on opening a run (a fallback to an older checkpoint); one line."""


class _Unreadable(RunError):
    """A checkpoint or model file that cannot be used; the message names it (without the run)."""


_ROUND_FILE = re.compile(r"round-(\d+)\.pt")


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
        self._lock_key: str | None = None  # this store's hold on the directory's lock (writers only)
        self._model_file: str | None = None  # the model file named by this session's checkpoints
        self._model_of: dict[int, str] = {}  # round -> model file, for the rounds committed this session
        present = {row[1] for row in db.execute("PRAGMA table_info(candidates)")}
        # a schema-2 directory opened read-only lacks the newer columns: they read as NULL
        self._select = "SELECT " + ", ".join(f if f in present else f"NULL AS {f}" for f in CANDIDATE_FIELDS) + \
            " FROM candidates"

    # ------------------------------------------------------------------ opening

    @staticmethod
    def open_or_create(path: str | Path, config: dict, keep: int = 2) -> "RunStore":
        """Create a new run, or reopen an existing one whose config equals `config`. The store
        holds the directory's lock until `close` (another process gets a RunError naming it)."""
        path = Path(path)
        config = json.loads(json.dumps(config))  # normalise (tuples -> lists) as it is stored
        config_file = path / "config.json"
        _check_run_path(path)
        if config_file.exists():
            stored = _read_config(path, need_db=False)
            diffs = config_differences(stored, config)
            if diffs:
                raise RunError(f"run directory {path} was created with a different config: {', '.join(diffs)} differ")
            _check_writable_run(path)
        elif path.exists() and any(p.name != lock.LOCK_FILE for p in path.iterdir()):
            raise RunError(f"{path} is not empty and is not a lossgen run directory (no config.json)")
        else:
            existing = next(p for p in [path, *path.parents] if p.exists())
            if not os.access(existing, os.W_OK | os.X_OK):
                raise RunError(f"cannot create run directory {path}: {existing} is {read_only_reason(existing)}")
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise RunError(f"cannot create run directory {path}: {err.strerror or err}") from None
        _refuse_lost_database(path, None)  # before the lock: a refused directory gains no lock file
        key = _lock(path)
        try:
            if config_file.exists():  # again, under the lock: another process may have created the run since
                diffs = config_differences(_read_config(path, need_db=False), config)
                if diffs:
                    raise RunError(f"run directory {path} was created with a different config: {', '.join(diffs)} differ")
            else:
                write_text_atomic(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
            (path / "checkpoints").mkdir(exist_ok=True)
            _refuse_lost_database(path, None)
            db = _connect(path)
            _refuse_lost_database(path, db)
        except OSError as err:
            lock.release(key)
            raise RunError(f"{_write_failure(err.filename or path, err)}: nothing was recorded") from None
        except BaseException:
            lock.release(key)
            raise
        store = RunStore(path, config, db, keep)
        store._lock_key = key
        return store

    @staticmethod
    def open_existing(path: str | Path) -> "RunStore":
        """Reopen a run directory with the config it was created with, to write to it."""
        path = Path(path)
        _check_run_path(path)
        return RunStore.open_or_create(path, _read_config(path))

    @staticmethod
    def open_readonly(path: str | Path) -> "RunStore":
        """Open a run directory to read it, changing nothing (reports, export, comparisons): a
        read-only SQLite connection, no directory, schema or lock file created; it works on
        read-only media (an immutable connection when the directory cannot be written). Writes
        raise RunError."""
        path = Path(path)
        _check_run_path(path)
        config = _read_config(path)
        uri = (path / "run.db").resolve().as_uri()
        try:
            try:
                db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=10.0, isolation_level=None)
                db.execute("SELECT 1 FROM candidates LIMIT 1")
            except sqlite3.OperationalError:
                if os.access(path, os.W_OK | os.X_OK):
                    raise
                # Read-only media: a WAL database's reader needs its -shm file, which cannot be
                # created here. Nothing can write to the run either, so it can be read as immutable,
                # unless committed rounds still sit in run.db-wal (only a writer can fold them in).
                wal = path / "run.db-wal"
                if wal.exists() and wal.stat().st_size > 0:
                    raise RunError(f"run directory {path} is {read_only_reason(path)} and run.db has changes in "
                                   f"run.db-wal that only a writable copy can read: copy the run directory to "
                                   f"writable storage") from None
                db = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=10.0, isolation_level=None)
                db.execute("SELECT 1 FROM candidates LIMIT 1")
        except sqlite3.Error as err:
            raise RunError(f"corrupted run directory {path}: run.db is unreadable ({err})") from None
        store = RunStore(path, config, db, keep=0)
        store.readonly = True
        return store

    def close(self) -> None:
        self.db.close()
        lock.release(self._lock_key)
        self._lock_key = None

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
        last = self.last_round()
        written: list[Path] = []  # removed again if the round cannot be recorded
        previous_model = self._model_file
        try:
            if model is not None:
                self._model_file = f"model-{round_:06d}.pt"
                target = self.path / "checkpoints" / self._model_file
                if not target.exists():
                    written.append(target)
                write_bytes_atomic(target, _serialize(model))
            if self._model_file is not None:
                state = {**state, "model_file": self._model_file}
            written.append(self._checkpoint_path(round_))
            write_bytes_atomic(self._checkpoint_path(round_), _serialize({"round": round_, "state": state}))
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("INSERT INTO rounds VALUES (?, ?, ?)", (round_, finished_at, json.dumps(info)))
                self.db.executemany(f"INSERT INTO candidates ({', '.join(CANDIDATE_FIELDS)}) "
                                    f"VALUES ({', '.join('?' * len(CANDIDATE_FIELDS))})", rows)
                self.db.execute("COMMIT")
            except BaseException:
                _rollback(self.db)
                raise
        except (OSError, sqlite3.Error) as err:
            self._model_file = previous_model
            for path in written:
                path.unlink(missing_ok=True)
            what = err.filename if isinstance(err, OSError) and err.filename else self.path / "run.db"
            kept = f"the run keeps its last completed round ({last})" if last >= 0 else "no round was completed yet"
            raise RunError(f"{_write_failure(what, err)}: {kept}, and the same command resumes it") from None
        except BaseException:
            self._model_file = previous_model
            raise
        if self._model_file is not None:
            self._model_of[round_] = self._model_file
        try:
            self._remove_old_checkpoints()
        except OSError:  # the round is recorded; old files go next time
            pass

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
        """The state after the last completed round (None before the first).

        When that round's checkpoint (or the model file it names) cannot be read, the previous
        kept checkpoint is used if it can be, and the database is rolled back by the last round in
        one transaction (the resumed run redoes that round from the same state), with a RunWarning.
        Otherwise RunError names the unreadable file."""
        last = self.last_round()
        if last < 0:
            return None
        try:
            return self._read_checkpoint(last)
        except _Unreadable as err:
            problem = f"corrupted run directory {self.path}: {err}"
        previous = self._checkpoint_path(last - 1)
        if last == 0 or not previous.exists():
            raise RunError(f"{problem}; no earlier checkpoint is kept to fall back to: restore the file, or move "
                           f"the run directory away and start over") from None
        if self.readonly:
            raise RunError(f"{problem}; opened read-only, so it cannot fall back to round {last - 1}") from None
        try:
            checkpoint = self._read_checkpoint(last - 1)
        except _Unreadable as err:
            raise RunError(f"{problem}, and so is the previous one: {err}; restore one of them, or move the run "
                           f"directory away and start over") from None
        used = self._phase3_candidates(last)
        if used:
            raise RunError(f"{problem}; round {last} cannot be rolled back because Phase III results use its "
                           f"candidate {used[0]}: restore the file") from None
        self._drop_round(last)
        self._checkpoint_path(last).unlink(missing_ok=True)
        warnings.warn(f"{problem}; fell back to the checkpoint of round {last - 1} and removed round {last} from "
                      f"run.db: the search redoes it", RunWarning, stacklevel=2)
        return checkpoint

    def _read_checkpoint(self, round_: int) -> Checkpoint:
        """Checkpoint `round_` with its model; RunError names the file on any problem (missing,
        truncated, random bytes, text, another round's state)."""
        path = self._checkpoint_path(round_)
        name = f"checkpoints/{path.name}"
        try:
            data = torch.load(path, weights_only=False)
        except Exception as err:  # torch.load raises anything pickle can: UnpicklingError, ValueError, ...
            raise _Unreadable(f"checkpoint {name} of round {round_} is unreadable ({_short(err)})") from None
        if not (isinstance(data, dict) and isinstance(data.get("state"), dict) and data.get("round") == round_):
            raise _Unreadable(f"checkpoint {name} is not the state after round {round_}")
        state = data["state"]
        if "model_file" in state:  # the recommender lives in its own file
            model_name = state["model_file"]
            try:
                model = torch.load(path.parent / str(model_name), weights_only=False)
            except Exception as err:
                raise _Unreadable(f"model file {model_name} of round {round_} is unreadable ({_short(err)})") from None
            state = {**{k: v for k, v in state.items() if k != "model_file"}, "model": model}
        return Checkpoint(round_, state)

    def _phase3_candidates(self, round_: int) -> list[str]:
        """Candidates of round `round_` that recorded Phase III results refer to."""
        ids = {r[0] for r in self.db.execute("SELECT id FROM candidates WHERE round = ? AND phase3 IS NOT NULL",
                                             (round_,))}
        phase3 = self.get_meta("phase3") or {}
        results = phase3.get("results") if isinstance(phase3, dict) else None
        for entry in results if isinstance(results, list) else []:
            if isinstance(entry, dict) and entry.get("candidate") is not None:
                found = self.db.execute("SELECT 1 FROM candidates WHERE id = ? AND round = ?",
                                        (entry["candidate"], round_)).fetchone()
                if found:
                    ids.add(entry["candidate"])
        return sorted(ids)

    def _drop_round(self, round_: int) -> None:
        """Remove the last round's rows in one transaction (the fallback to an older checkpoint)."""
        self._writable()
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM candidates WHERE round = ?", (round_,))
                self.db.execute("DELETE FROM rounds WHERE round = ?", (round_,))
                self.db.execute("COMMIT")
            except BaseException:
                _rollback(self.db)
                raise
        except sqlite3.Error as err:
            raise RunError(f"{_write_failure(self.path / 'run.db', err)} while rolling back round {round_}") from None

    # ------------------------------------------------------------------ queries and later phases

    def _records(self, where: str = "", params: tuple = ()) -> list[CandidateRecord]:
        rows = self.db.execute(f"{self._select} {where} ORDER BY round, rowid", params)
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
        try:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        except sqlite3.Error as err:
            raise RunError(f"{_write_failure(self.path / 'run.db', err)}: {key} was not recorded") from None

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_phase2(self, rates: dict[str, float], strict: dict[str, float | None] | None = None) -> None:
        """Phase II rates (and the strict measures, when checked strictly: None clears them) in one transaction."""
        extra = [] if strict is None else [("UPDATE candidates SET phase2_strict = ? WHERE id = ?",
                                            [(v, k) for k, v in strict.items()])]
        self._update_many("phase2_rate", rates, extra)

    def set_phase3(self, results: dict[str, dict], meta: Any = None) -> None:
        """Phase III results per candidate and, when given, the run's summary (meta `phase3`), in
        one transaction: an interrupted write leaves neither."""
        extra = [] if meta is None else [("INSERT OR REPLACE INTO meta VALUES ('phase3', ?)", [(json.dumps(meta),)])]
        self._update_many("phase3", {k: json.dumps(v) for k, v in results.items()}, extra)

    def _update_many(self, column: str, values: dict[str, Any], extra: list[tuple[str, list[tuple]]] = ()) -> None:
        """`column` of the candidates in `values` (id -> value), and each (statement, rows) of `extra`
        run over its rows, in one transaction."""
        self._writable()
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(f"UPDATE candidates SET {column} = ? WHERE id = ?",
                                    [(v, k) for k, v in values.items()])
                for sql, rows in extra:
                    self.db.executemany(sql, rows)
                self.db.execute("COMMIT")
            except BaseException:
                _rollback(self.db)
                raise
        except sqlite3.Error as err:
            raise RunError(f"{_write_failure(self.path / 'run.db', err)}: the {column} results were not "
                           f"recorded") from None

    def _writable(self) -> None:
        if self.readonly:
            raise RunError(f"run {self.path} was opened read-only")


# ---------------------------------------------------------------------- opening and faults

def _check_run_path(path: Path) -> None:
    """A run directory path that is a file, or lies under one, is refused by name."""
    blocker = file_in_the_way(path)
    if blocker == path:
        raise RunError(f"run directory {path} is a file, not a directory")
    if blocker is not None:
        raise RunError(f"run directory {path} cannot exist: {blocker} is a file, not a directory")


def _check_writable_run(path: Path) -> None:
    """An existing run this command would write to must be writable: say "read-only" otherwise
    (reading it needs no write: reports and exports open it read-only)."""
    for p in (path, path / "checkpoints", path / "run.db"):
        if p.exists() and not os.access(p, os.W_OK | (os.X_OK if p.is_dir() else 0)):
            raise RunError(f"run directory {path} is {read_only_reason(p)}: this command writes to it; "
                           f"reports and exports can still read it, with their output elsewhere")


def _lock(path: Path) -> str | None:
    try:
        return lock.acquire(path)
    except lock.LockedError as err:
        raise RunError(str(err)) from None
    except OSError as err:
        raise RunError(f"cannot lock run directory {path}: {_write_failure(path / lock.LOCK_FILE, err)}") from None


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path / "run.db", isolation_level=None)  # explicit transactions below
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(version[0]) == 2:  # schema 2 -> 3: add the new columns (NULL for the old rows)
            db.execute("BEGIN IMMEDIATE")
            for name, kind in NEW_COLUMNS.items():
                db.execute(f"ALTER TABLE candidates ADD COLUMN {name} {kind}")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        elif int(version[0]) != SCHEMA_VERSION:
            raise RunError(f"run directory {path} has schema {version[0]}, this lossgen reads {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as err:
        if _is_full(err):
            raise RunError(f"{_write_failure(path / 'run.db', err)}: nothing was changed") from None
        raise RunError(f"corrupted run directory {path}: run.db is unreadable ({err})") from None
    return db


def _round_checkpoints(path: Path) -> list[int]:
    """Rounds of the checkpoint files in `path`, ascending."""
    folder = path / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _ROUND_FILE.fullmatch(p.name)))


def _refuse_lost_database(path: Path, db: sqlite3.Connection | None) -> None:
    """Checkpoints of rounds the database does not have mean it was removed, emptied or replaced:
    starting over would delete them. (A checkpoint of the round after the last is normal: a kill
    between writing it and the round's transaction.) Before connecting (db None), a missing or
    empty run.db is checked, so SQLite creates nothing."""
    rounds = _round_checkpoints(path)
    if not rounds:
        return
    if db is None:
        database = path / "run.db"
        missing = not database.exists() or database.stat().st_size == 0
        last = -1 if missing else None
    else:
        row = db.execute("SELECT MAX(round) FROM rounds").fetchone()
        last = -1 if row[0] is None else int(row[0])
    if last is None or rounds[-1] <= last + 1:
        return
    if db is not None:
        db.close()
    if last < 0:
        raise RunError(f"run directory {path} has checkpoints (up to round {rounds[-1]}) but no run database "
                       f"(run.db is missing or empty): refusing to start over; move it away or restore run.db")
    raise RunError(f"run directory {path} has checkpoints up to round {rounds[-1]} but run.db ends at round {last} "
                   f"(an older copy?): refusing to continue; restore the run's own run.db")


def _is_full(err: BaseException) -> bool:
    return isinstance(err, sqlite3.Error) and ("full" in str(err) or "disk I/O error" in str(err))


def _write_failure(what, err: BaseException) -> str:
    """One line for a failed write: disk full / file too large / read-only / other."""
    if isinstance(err, OSError):
        if isinstance(err, WriteError):
            return str(err)
        return describe(what, err)
    if _is_full(err):
        return f"disk full or file too large while writing {what} ({err})"
    if "readonly" in str(err):
        return f"cannot write {what}: read-only ({err})"
    return f"cannot write {what} ({err})"


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:200]}"


def _rollback(db: sqlite3.Connection) -> None:
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:  # SQLite already rolled back (after a full disk, for one)
        pass


def _read_config(path: Path, need_db: bool = True) -> dict:
    if need_db and (path / "config.json").is_file() and not (path / "run.db").is_file():
        _refuse_lost_database(path, None)
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
