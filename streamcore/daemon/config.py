"""Where ``streamcore run``'s settings come from: flags, then ``STREAMCORE_*``, then TOML.

A setting given as a flag wins; else the environment variable named after it
(``--checkpoint-interval`` is ``STREAMCORE_CHECKPOINT_INTERVAL``); else the file of
``--config`` (or ``STREAMCORE_CONFIG``), a TOML file whose ``[run]`` table (or top level)
uses the flags' names with ``-`` or ``_``; else the flag's default. Flags that take no
value (``--catch-up``) read ``true``/``false`` (``1``/``0``, ``yes``/``no``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamcore.duration import to_seconds
from streamcore.errors import ConfigError

if TYPE_CHECKING:
    from streamcore.state.checkpointing import RestartPolicy

__all__ = ["ConfigError", "apply_config", "env_name", "parse_restart"]

ENV_PREFIX = "STREAMCORE_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(dest: str) -> str:
    """``checkpoint_interval`` -> ``STREAMCORE_CHECKPOINT_INTERVAL``."""
    return ENV_PREFIX + dest.upper()


def _file_settings(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    import tomllib  # only with a config file: --help and plain runs do without it

    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None
    if "run" in data:
        table = data["run"]
        if not isinstance(table, Mapping):
            raise ConfigError(f"config file {path!r}: [run] must be a table")
        for name, value in data.items():
            if name == "run":
                continue
            if isinstance(value, Mapping):
                raise ConfigError(f"config file {path!r}: unknown table [{name}]{_did_you_mean(name, ['run'], '[{}]')}")
            raise ConfigError(
                f"config file {path!r}: setting {name!r} is outside the [run] table; move it into [run]"
            )
        where = "run."
    else:
        table, where = data, ""
    for name, value in table.items():
        if isinstance(value, Mapping):
            hint = _did_you_mean(name, ["run"], "[{}]") if not where else ""
            raise ConfigError(f"config file {path!r}: unknown table [{where}{name}]{hint}")
    return {str(k).replace("-", "_"): v for k, v in table.items()}


def _did_you_mean(name: str, known: Iterable[str], shown: str = "{!r}") -> str:
    """``"; did you mean 'x'?"`` for the closest of ``known``, or an empty string."""
    import difflib  # only to suggest a name in an error

    close = difflib.get_close_matches(name.replace("-", "_"), list(known), n=1, cutoff=0.6)
    return f"; did you mean {shown.format(close[0])}?" if close else ""


def _convert(action: argparse.Action, raw: Any, where: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{where}: expected true or false, got {raw!r}")
    value = raw if not isinstance(raw, bool) else str(raw).lower()
    if action.type is not None and isinstance(value, str):
        try:
            value = action.type(value)  # type: ignore[operator]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    elif action.type is int and not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {raw!r}")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {value!r} is not one of {choices}")
    return value


def apply_config(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None,
                 config_path: str | None = None) -> None:
    """Set ``parser``'s defaults from the config file, then from the environment."""
    environ = os.environ if environ is None else environ
    path = config_path or environ.get(ENV_PREFIX + "CONFIG")
    from_file = _file_settings(path)
    known = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    unknown = sorted(set(from_file) - set(known))
    if unknown:
        name = unknown[0]
        raise ConfigError(
            f"config file {path!r}: unknown setting {name!r}{_did_you_mean(name, known)} "
            "(the settings are the options of 'streamcore run --help', with - or _)"
        )
    defaults: dict[str, Any] = {}
    for dest, raw in from_file.items():
        defaults[dest] = _convert(known[dest], raw, f"config file {path!r}: {dest}")
    for dest, action in known.items():
        name = env_name(dest)
        if name in environ:
            defaults[dest] = _convert(action, environ[name], name)
    parser.set_defaults(**defaults)


def parse_restart(text: str | None) -> RestartPolicy | None:
    """``never``, ``fixed:ATTEMPTS:DELAY`` or ``exponential:ATTEMPTS[:DELAY[:MAX_DELAY]]``."""
    if text is None or text.strip().lower() == "never":
        return None
    from streamcore.state.checkpointing import RestartPolicy  # not needed for --help

    parts = text.strip().split(":")
    kind = parts[0].lower()
    try:
        if kind == "fixed" and len(parts) == 3:
            return RestartPolicy(
                int(parts[1]), delay=to_seconds(parts[2], "--restart delay"), backoff="fixed"
            )
        if kind == "exponential" and 1 <= len(parts) <= 4:
            attempts = int(parts[1]) if len(parts) > 1 else 5
            options: dict[str, Any] = {}
            if len(parts) > 2:
                options["delay"] = to_seconds(parts[2], "--restart delay")
            if len(parts) > 3:
                options["max_delay"] = to_seconds(parts[3], "--restart max delay")
            return RestartPolicy(attempts, backoff="exponential", **options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--restart {text!r}: {exc}") from None
    raise ConfigError(
        f"--restart {text!r}: expected never, fixed:ATTEMPTS:DELAY (e.g. fixed:5:10s) or "
        "exponential:ATTEMPTS[:DELAY[:MAX_DELAY]] (e.g. exponential:10:1s:1m)"
    )
