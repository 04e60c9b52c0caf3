"""`--config FILE` for the pipeline commands: a flat TOML table whose keys are long option names
(`budget = 300`, `strategy = "evolution"`, `no-proxy` is written `proxy = false`).

Precedence: an option given on the command line, then the file, then the built-in default.
Typer cannot tell a typed default from an omitted option, so the commands declare their
options with default None and resolve them here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message names the file and the problem."""


def load_config_file(path: Path | None, known: set[str]) -> dict[str, Any]:
    """The file's settings with keys normalised to option names (dashes -> underscores);
    unknown keys are an error naming them."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigFileError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigFileError(f"config file {path} is not valid TOML: {err}") from None
    settings = {key.replace("-", "_"): value for key, value in raw.items()}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigFileError(f"config file {path}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return settings


def resolve(cli: dict[str, Any], file: dict[str, Any], defaults: dict[str, Any],
            types: dict[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
    """Command line over file over defaults, for every key of `defaults`; file values are
    checked against the default's type, or `types[key]` where given (needed for keys whose
    default is None); ints are accepted where floats are expected, booleans only as bool."""
    out = {}
    for key, default in defaults.items():
        if cli.get(key) is not None:
            out[key] = cli[key]
        elif key in file:
            value = file[key]
            expected = (types or {}).get(key, type(default) if default is not None else None)
            allowed = expected if isinstance(expected, tuple) else (expected,)
            if float in allowed and int not in allowed and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if expected is not None and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
                names = " or ".join(t.__name__ for t in allowed)
                raise ConfigFileError(f"config key {key!r} should be {names}, got {value!r}")
            out[key] = value
        else:
            out[key] = default
    return out
