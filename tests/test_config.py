import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from tracker.config import ConfigError, Settings, ensure_secret_key, load_settings, setting_fields

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def _example_as_toml() -> str:
    """The example with its `# key = value` lines uncommented."""
    lines = EXAMPLE.read_text().splitlines()
    return "\n".join(m.group(1) for line in lines if (m := re.match(r"^# (\w+ = .*)$", line)))


def test_example_config_parses_and_lists_every_setting_with_its_default(tmp_path):
    data = tomllib.loads(_example_as_toml())
    assert set(data) == {f.name for f in setting_fields()}
    settings = load_settings(_write(data, tmp_path / "example.toml"), environ={})
    assert settings == Settings()


def _write(data: dict, path: Path) -> Path:
    path.write_text("\n".join(f"{k} = {_toml_value(v)}" for k, v in data.items()))
    return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def test_every_setting_has_help_text():
    for field in setting_fields():
        assert field.metadata.get("help"), field.name


def test_environment_overrides_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\ntrusted_proxies = ["10.0.0.1"]\n')
    env = {
        "TRACKER_PORT": "9100",
        "TRACKER_SCHEDULER_ENABLED": "false",
        "TRACKER_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
    }
    settings = load_settings(config, environ=env)
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.scheduler_enabled is False
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.1")


def test_config_path_from_environment(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("workers = 5\n")
    assert load_settings(environ={"TRACKER_CONFIG": str(config)}).workers == 5


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("port = 'x'\n", {}, "port"),
        ("nonsense = 1\n", {}, "unknown setting 'nonsense'"),
        ("port = \n", {}, "not valid TOML"),
        ("", {"TRACKER_WORKERS": "many"}, "TRACKER_WORKERS"),
        ("", {"TRACKER_SCHEDULER_ENABLED": "perhaps"}, "TRACKER_SCHEDULER_ENABLED"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path, content, env, message):
    config = tmp_path / "c.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ=env)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_secret_key_is_generated_once_and_kept(tmp_path):
    settings = Settings(data_dir=str(tmp_path))
    first = ensure_secret_key(settings).secret_key
    second = ensure_secret_key(settings).secret_key
    assert first == second
    assert len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert (
        ensure_secret_key(dataclasses.replace(settings, secret_key="given")).secret_key == "given"
    )


def test_default_database_is_sqlite_in_data_dir(tmp_path):
    url = Settings(data_dir=str(tmp_path)).resolved_database_url()
    assert url == f"sqlite:///{tmp_path}/tracker.db"
