"""Reading the configuration: YAML plus environment, strict keys, Kratos pastes, durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.config import load_settings
from postroom.config.durations import parse_duration
from postroom.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postroom.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ or {})
    return str(info.value)


# -- file and environment -------------------------------------------------------------


def test_yaml_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
dsn: sqlite:///./var/other.db
courier:
  delivery_strategy: smtp
  smtp:
    connection_uri: smtps://user:pass@mail.example.org/
    from_address: no-reply@example.org
    from_name: Example
    reply_to: support@example.org
    headers: {X-SES-CONFIGURATION-SET: identity}
    local_name: mail.example.org
    timeout: 10s
  message_retries: 3
  retry: {initial: 1s, max: 2m}
  message_ttl: 30m
  worker: {concurrency: 4, lease: 90s}
""",
    )
    loaded = load_settings(path, environ={})
    settings = loaded.settings
    assert loaded.warnings == []
    assert loaded.source == path
    assert settings.dsn == "sqlite:///./var/other.db"
    courier = settings.courier
    assert courier.strategy == "smtp"
    assert courier.smtp.from_address == "no-reply@example.org"
    assert courier.smtp.from_name == "Example"
    assert courier.smtp.reply_to == "support@example.org"
    assert courier.smtp.headers == {"X-SES-CONFIGURATION-SET": "identity"}
    assert courier.smtp.local_name == "mail.example.org"
    assert courier.smtp.timeout == 10.0
    assert courier.message_retries == 3
    assert (courier.retry.initial, courier.retry.max) == (1.0, 120.0)
    assert courier.message_ttl == 1800.0
    assert (courier.worker.concurrency, courier.worker.lease) == (4, 90.0)
    uri = courier.smtp.uri()
    assert uri is not None and uri.port == 465


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
dsn: sqlite:///./var/file.db
courier:
  smtp:
    connection_uri: smtp://file:pass@file.example.org:587/
    from_address: file@example.org
  message_retries: 2
""",
    )
    settings = load_settings(
        path,
        environ={
            "DSN": "sqlite:///./var/env.db",
            "COURIER_SMTP_CONNECTION_URI": "smtps://env:pass@env.example.org/",
            "COURIER_SMTP_FROM_ADDRESS": "env@example.org",
            "COURIER_MESSAGE_RETRIES": "9",
            "COURIER_MESSAGE_TTL": "5m",
        },
    ).settings
    assert settings.dsn == "sqlite:///./var/env.db"
    uri = settings.courier.smtp.uri()
    assert uri is not None and uri.host == "env.example.org" and uri.username == "env"
    assert settings.courier.smtp.from_address == "env@example.org"
    assert settings.courier.message_retries == 9
    assert settings.courier.message_ttl == 300.0


def test_environment_alone_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./postroom.yaml here
    loaded = load_settings(
        None, environ={"COURIER_SMTP_CONNECTION_URI": "smtp://u:p@mail.example.org/"}
    )
    assert loaded.source is None
    assert loaded.settings.courier.strategy == "smtp"


@pytest.mark.parametrize(
    "raw",
    [
        '["tok-aaaaaaaaaaaaaaaa1", "tok-bbbbbbbbbbbbbbbb2"]',
        "tok-aaaaaaaaaaaaaaaa1,tok-bbbbbbbbbbbbbbbb2",
    ],
)
def test_lists_come_from_the_environment_as_the_docs_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    # The README tells operators to give the default tenant its intake tokens this way.
    monkeypatch.chdir(tmp_path)
    environ = {
        "COURIER_INTAKE_TOKENS": raw,
        "COURIER_RATE_LIMITS": "[{count: 30, per: 1m}]",
        "COURIER_SMTP_FROM_NAME": "[Acme] Support",  # text that looks like YAML stays text
    }
    courier = load_settings(None, environ=environ).settings.courier
    assert len(courier.intake_tokens) == 2
    assert courier.smtp.from_name == "[Acme] Support"
    assert [(r.count, r.per) for r in courier.rate_limits] == [(30, 60.0)]


def test_defaults_deliver_to_the_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={}).settings
    assert settings.courier.strategy == "outbox"
    assert settings.dsn.startswith("sqlite:///")
    assert settings.courier.message_retries == 5


def test_postroom_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "courier: {message_retries: 1}\n")
    loaded = load_settings(None, environ={"POSTROOM_CONFIG": str(path)})
    assert loaded.settings.courier.message_retries == 1
    assert loaded.source == path


def test_bad_environment_value_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "{}\n")
    message = config_error(path, {"COURIER_MESSAGE_RETRIES": "many"})
    assert "courier.message_retries" in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in message


def test_a_list_at_the_top_is_refused(tmp_path: Path) -> None:
    assert "mapping" in config_error(write(tmp_path, "- a\n- b\n"))


def test_invalid_yaml_says_where_without_quoting_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "courier:\n  smtp:\n    connection_uri: smtp://u:Hunter2Secret: x@host:587/\n",
    )
    message = config_error(path)
    assert "not valid YAML" in message
    assert "line 3" in message
    assert "Hunter2Secret" not in message


# -- unknown keys and bad values --------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "path", "allowed"),
    [
        ("colour: blue\n", "colour", ["dsn", "courier", "tenants"]),
        ("courier: {bogus: 1}\n", "courier.bogus", ["smtp", "message_retries", "worker"]),
        (
            "courier: {smtp: {passwd: x}}\n",
            "courier.smtp.passwd",
            ["connection_uri", "from_address", "headers"],
        ),
        ("courier: {retry: {maximum: 5m}}\n", "courier.retry.maximum", ["initial", "max"]),
        ("courier: {worker: {threads: 2}}\n", "courier.worker.threads", ["concurrency", "lease"]),
        ("serve: {listen: x}\n", "serve.listen", ["host", "port", "admin_token"]),
        (
            "tenants: {acme: {courier: {smtp: {user: x}}}}\n",
            "tenants.acme.courier.smtp.user",
            ["connection_uri"],
        ),
    ],
)
def test_unknown_key_names_its_path_and_the_allowed_keys(
    tmp_path: Path, yaml_text: str, path: str, allowed: list[str]
) -> None:
    message = config_error(write(tmp_path, yaml_text))
    assert f"{path}: unknown key" in message
    line = next(line for line in message.splitlines() if path in line)
    for key in allowed:
        assert key in line


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "courier: {bogus: 1, smtp: {nope: 2}}\nextra: 3\n"))
    assert "courier.bogus" in message
    assert "courier.smtp.nope" in message
    assert "extra" in message


@pytest.mark.parametrize(
    ("yaml_text", "path", "hint"),
    [
        ("courier: {message_retries: -1}\n", "courier.message_retries", "greater than or equal"),
        ("courier: {smtp: {timeout: fast}}\n", "courier.smtp.timeout", "30s"),
        ("courier: {smtp: {timeout: 0s}}\n", "courier.smtp.timeout", "longer than 0s"),
        ("courier: {message_ttl: soon}\n", "courier.message_ttl", "30s"),
        ("courier: {delivery_strategy: pigeon}\n", "courier.delivery_strategy", "smtp"),
        ("courier: {worker: {concurrency: 0}}\n", "courier.worker.concurrency", "greater"),
        ("courier: {worker: {lease: 0s}}\n", "courier.worker.lease", "longer than 0s"),
        ("courier: {retry: {initial: -2s}}\n", "courier.retry.initial", "duration"),
        ("courier: {smtp: {timeout: .inf}}\n", "courier.smtp.timeout", "infinity"),
        ("courier: {smtp: {from_address: nobody}}\n", "courier.smtp.from_address", "email"),
        ("courier: {smtp: {reply_to: 'a b@x'}}\n", "courier.smtp.reply_to", "email"),
        ('courier: {smtp: {from_name: "A\\nB"}}\n', "courier.smtp.from_name", "line break"),
        (
            'courier: {smtp: {headers: {X-Tag: "a\\r\\nBcc: x@example.org"}}}\n',
            "courier.smtp.headers",
            "X-Tag",
        ),
        ("courier: {smtp: {headers: {From: x@example.org}}}\n", "courier.smtp.headers", "From"),
        (
            "tenants: {acme: {courier: {message_retries: many}}}\n",
            "tenants.acme.courier.message_retries",
            "integer",
        ),
        ("serve: {port: 70000}\n", "serve.port", "65535"),
    ],
)
def test_bad_value_names_its_path(tmp_path: Path, yaml_text: str, path: str, hint: str) -> None:
    message = config_error(write(tmp_path, yaml_text))
    line = next((line for line in message.splitlines() if f"{path}:" in line), None)
    assert line is not None, message
    assert hint in line


def test_bad_connection_uri_names_the_path_and_hides_the_password(tmp_path: Path) -> None:
    path = write(
        tmp_path, "courier:\n  smtp:\n    connection_uri: smtp://u:Hunter2Secret@host:abc/\n"
    )
    message = config_error(path)
    assert "courier.smtp.connection_uri" in message
    assert "Hunter2Secret" not in message


def test_bad_connection_uri_from_the_environment_hides_the_password(tmp_path: Path) -> None:
    message = config_error(
        write(tmp_path, "{}\n"),
        {"COURIER_SMTP_CONNECTION_URI": "smtp://u:Hunter2Secret@host/?verify=no"},
    )
    assert "courier.smtp.connection_uri" in message
    assert "'verify'" in message
    assert "Hunter2Secret" not in message


def test_settings_repr_hides_the_connection_uri(tmp_path: Path) -> None:
    path = write(tmp_path, "courier: {smtp: {connection_uri: 'smtp://u:Hunter2Secret@h/'}}\n")
    settings = load_settings(path, environ={}).settings
    assert "Hunter2Secret" not in repr(settings)


def test_tenant_named_default_is_refused(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "tenants: {default: {courier: {}}}\n"))
    assert "tenants.default" in message


def test_tenants_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants: {acme: {courier: {message_retries: 1}}}\n")
    settings = load_settings(path, environ={}).settings
    assert settings.tenant_names() == ["default", "acme"]
    assert settings.tenant("acme").message_retries == 1


# -- pasting a Kratos configuration -----------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        (
            "courier:\n  templates:\n    recovery:\n      valid:\n        email:\n"
            "          body: {plaintext: 'base64://SGk='}\n",
            "courier.templates",
        ),
        ("courier: {worker: {pull_count: 10}}\n", "courier.worker.pull_count"),
        ("courier: {worker: {pull_wait: 1s}}\n", "courier.worker.pull_wait"),
        ("courier: {channels: [{id: sms, type: http}]}\n", "courier.channels"),
        ("courier: {sms: {enabled: false}}\n", "courier.sms"),
        (
            "tenants: {acme: {courier: {worker: {pull_count: 5}}}}\n",
            "tenants.acme.courier.worker.pull_count",
        ),
    ],
)
def test_kratos_only_keys_are_accepted_with_a_warning_naming_them(
    tmp_path: Path, yaml_text: str, key: str
) -> None:
    loaded = load_settings(write(tmp_path, yaml_text), environ={})
    assert len(loaded.warnings) == 1
    assert key in loaded.warnings[0]
    assert "Postroom" in loaded.warnings[0]  # says what Postroom does instead


def test_kratos_worker_keys_leave_postroom_worker_keys_working(tmp_path: Path) -> None:
    path = write(tmp_path, "courier: {worker: {pull_count: 10, pull_wait: 1s, concurrency: 3}}\n")
    loaded = load_settings(path, environ={})
    assert loaded.settings.courier.worker.concurrency == 3
    assert len(loaded.warnings) == 2


def test_a_whole_kratos_courier_section_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
courier:
  delivery_strategy: smtp
  message_retries: 5
  smtp:
    connection_uri: smtps://test:test@mailslurper:1025/?skip_ssl_verify=true
    from_address: no-reply@ory.kratos.sh
    from_name: My Project
    headers:
      X-SES-SOURCE-ARN: arn:aws:ses:us-west-2:123456789012:identity/example.com
    local_name: kratos.example.org
  worker:
    pull_count: 50
    pull_wait: 1s
""",
    )
    loaded = load_settings(path, environ={})
    uri = loaded.settings.courier.smtp.uri()
    assert uri is not None and not uri.verify
    assert {w.split(" ")[0] for w in loaded.warnings} == {
        "courier.worker.pull_count",
        "courier.worker.pull_wait",
    }


def test_gotmpl_in_kratos_templates_is_refused_with_the_jinja2_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
courier:
  templates:
    login_code:
      valid:
        email:
          body:
            html: file:///etc/kratos/templates/login_code.html.gotmpl
""",
    )
    message = config_error(path)
    assert "courier.templates" in message
    assert ".gotmpl" in message
    for name in ("email.subject.j2", "email.body.plaintext.j2", "email.body.html.j2"):
        assert name in message


def test_gotmpl_in_the_override_directory_is_refused(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    (overrides / "recovery" / "valid").mkdir(parents=True)
    (overrides / "recovery" / "valid" / "email.body.gotmpl").write_text("{{ .RecoveryURL }}")
    path = write(tmp_path, f"courier: {{template_override_path: '{overrides}'}}\n")
    message = config_error(path)
    assert "courier.template_override_path" in message
    assert "email.body.gotmpl" in message
    assert "email.body.html.j2" in message


def test_jinja2_override_directory_is_accepted(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    (overrides / "login_code_valid").mkdir(parents=True)
    (overrides / "login_code_valid" / "email.subject.j2").write_text("Code")
    path = write(tmp_path, f"courier: {{template_override_path: '{overrides}'}}\n")
    loaded = load_settings(path, environ={})
    assert loaded.settings.courier.template_override_path == str(overrides)


def test_missing_override_directory_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"courier: {{template_override_path: '{tmp_path / 'nope'}'}}\n")
    assert "courier.template_override_path" in config_error(path)


# -- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("30d", 2_592_000.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("0", 0.0),
        ("45", 45.0),
        (12, 12.0),
    ],
)
def test_durations_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1h 30m", "-5s", "1x", "ms", True])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "courier: {message_ttl: 1h30m, retry: {initial: 500ms, max: 30d}}\n")
    courier = load_settings(path, environ={}).settings.courier
    assert courier.message_ttl == 5400.0
    assert courier.retry.initial == 0.5
    assert courier.retry.max == 2_592_000.0


# -- courier.ory -------------------------------------------------------------------------------


def test_ory_settings_are_read_and_checked(tmp_path: Path) -> None:
    good = """
courier:
  ory:
    render: kratos
    token_in: [{header: X-Courier-Auth}, {cookie: kratos_courier}]
"""
    ory = load_settings(write(tmp_path, good), environ={}).settings.courier.ory
    assert ory.render == "kratos"
    assert [(p.header, p.cookie) for p in ory.token_in] == [
        ("X-Courier-Auth", None),
        (None, "kratos_courier"),
    ]
    assert load_settings(write(tmp_path, "{}"), environ={}).settings.courier.ory.render == "auto"
    env = load_settings(write(tmp_path, "{}"), environ={"COURIER_ORY_RENDER": "postroom"})
    assert env.settings.courier.ory.render == "postroom"
    both = "courier: {ory: {token_in: [{header: A, cookie: b}]}}"
    assert "exactly one of header or cookie" in config_error(write(tmp_path, both))
    bad_name = "courier: {ory: {token_in: [{header: 'X Bad'}]}}"
    assert "not a valid header or cookie name" in config_error(write(tmp_path, bad_name))
    bad_mode = "courier: {ory: {render: jinja}}"
    assert "courier.ory.render" in config_error(write(tmp_path, bad_mode))
