"""``streamcore run`` settings: flags over STREAMCORE_* over the TOML file; --restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamcore.daemon.cli import _parse, build_parser
from streamcore.daemon.config import ConfigError, apply_config, parse_restart


def parse(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> object:
    for name in [n for n in __import__("os").environ if n.startswith("STREAMCORE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return _parse(build_parser(), argv)


def test_a_flag_wins_over_the_environment_which_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "streamcore.toml"
    config.write_text('[run]\ncheckpoint-interval = "30s"\nmetrics_port = 9100\nlog-level = "debug"\n'
                      'state = "redis://file:6379/0"\n')
    args = parse(
        ["run", "job:flow", "--config", str(config), "--state", "redis://flag:6379/0"],
        {"STREAMCORE_CHECKPOINT_INTERVAL": "5s", "STREAMCORE_STATE": "redis://env:6379/0"},
        monkeypatch,
    )
    assert args.state == "redis://flag:6379/0"  # type: ignore[attr-defined]
    assert args.checkpoint_interval == "5s"  # type: ignore[attr-defined]
    assert args.metrics_port == 9100  # type: ignore[attr-defined]
    assert args.log_level == "DEBUG"  # type: ignore[attr-defined]


def test_the_config_file_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('metrics-port = 9200\ncatch-up = true\n')
    args = parse(["run", "job:flow"], {"STREAMCORE_CONFIG": str(config), "STREAMCORE_API_TOKEN": "s3"}, monkeypatch)
    assert (args.metrics_port, args.catch_up, args.api_token) == (9200, True, "s3")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMCORE_METRICS_PORT": "http"}, "STREAMCORE_METRICS_PORT"),
        ({"STREAMCORE_LOG_FORMAT": "xml"}, "not one of text, json"),
        ({"STREAMCORE_CATCH_UP": "maybe"}, "expected true or false"),
    ],
)
def test_bad_environment_values_are_named(env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(["run", "job:flow"], env, monkeypatch)


def test_an_unknown_or_broken_config_file_is_a_clear_error(tmp_path: Path) -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    bad = tmp_path / "bad.toml"
    bad.write_text("metrics_prot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'metrics_prot'; did you mean 'metrics_port'\?"):
        apply_config(run, environ={}, config_path=str(bad))
    bad.write_text("this is not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        apply_config(run, environ={}, config_path=str(bad))
    with pytest.raises(ConfigError, match="cannot read config file"):
        apply_config(run, environ={}, config_path=str(tmp_path / "missing.toml"))


def test_restart_policies() -> None:
    assert parse_restart(None) is None and parse_restart("never") is None
    fixed = parse_restart("fixed:5:10s")
    assert fixed is not None and (fixed.attempts, fixed.backoff, fixed.wait_s(3)) == (5, "fixed", 10.0)
    exp = parse_restart("exponential:10:1s:4s")
    assert exp is not None and (exp.attempts, exp.wait_s(1), exp.wait_s(2), exp.wait_s(5)) == (10, 1.0, 2.0, 4.0)
    for bad in ("fixed:5", "sometimes", "fixed:x:1s", "exponential:3:soon"):
        with pytest.raises(ConfigError, match="--restart"):
            parse_restart(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rnu]\nstate = 'redis://x'\n", r"unknown table \[rnu\]; did you mean \[run\]\?"),
        ("[run]\nstate = 'redis://x'\n[loggin]\nlevel = 'DEBUG'\n", r"unknown table \[loggin\]"),
        ("[run]\n[run.metrics]\nport = 1\n", r"unknown table \[run.metrics\]"),
        ("[run]\ncheckpoint-intreval = '1s'\n", r"unknown setting 'checkpoint_intreval'; did you mean 'checkpoint_interval'\?"),
        ("log_level = 'DEBUG'\n[run]\nstate = 'redis://x'\n", r"setting 'log_level' is outside the \[run\] table"),
    ],
)
def test_an_unknown_table_or_key_is_an_error_with_a_suggestion(tmp_path: Path, text: str, message: str) -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        apply_config(run, environ={}, config_path=str(path))
