"""Read the configuration: YAML file, then environment variables (the environment wins).

Kratos users can paste their ``courier`` section: Kratos-only keys are accepted with a warning
that says what Postroom does instead, and Go-template overrides are refused.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from postroom.config.bodies import check_file_bodies
from postroom.config.settings import CourierSettings, Settings, TenantSettings
from postroom.deliverability.dkim import load_private_key
from postroom.errors import ConfigError

# Kratos keys Postroom accepts and ignores, with what it does instead.
KRATOS_ONLY: dict[tuple[str, ...], str] = {
    ("templates",): "Postroom renders its built-in Jinja2 templates; put overrides under "
    "courier.template_override_path/<template_type>/email.subject.j2 (and "
    "email.body.plaintext.j2, email.body.html.j2)",
    ("worker", "pull_count"): "Postroom claims messages in batches sized by "
    "courier.worker.concurrency",
    ("worker", "pull_wait"): "Postroom wakes its workers as soon as a message is enqueued",
    ("channels",): "Postroom delivers email only; SMS channels are not supported",
    ("sms",): "Postroom delivers email only; SMS is not supported",
}

GOTMPL_HINT = (
    "Go templates (*.gotmpl) are not supported: Postroom uses Jinja2. Name override files "
    "<template_type>/email.subject.j2, email.body.plaintext.j2 and email.body.html.j2, and "
    "write {{ login_code }} instead of {{ .LoginCode }}"
)


@dataclass(slots=True)
class Loaded:
    """The validated settings, the warnings to show, and where they came from."""

    settings: Settings
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None


def _env_leaves(model: type[BaseModel], prefix: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Map env names (``COURIER_SMTP_FROM_ADDRESS``) to key paths for scalar settings."""
    out: dict[str, tuple[str, ...]] = {}
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(_env_leaves(annotation, path))
        elif path[0] != "tenants" and path != ("serve", "allow_private_targets"):
            out["_".join(path).upper()] = path
    return out


ENV_KEYS = _env_leaves(Settings, ())


def _is_collection(annotation: Any) -> bool:
    """True for a list, tuple or mapping type (also inside ``X | None``)."""
    origin = typing.get_origin(annotation)
    if origin in {list, tuple, dict, set, frozenset}:
        return True
    return any(_is_collection(arg) for arg in typing.get_args(annotation) if arg is not None)


def _collection_paths(model: type[BaseModel], prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= _collection_paths(annotation, (*prefix, name))
        elif _is_collection(annotation):
            found.add((*prefix, name))
    return found


_COLLECTIONS = _collection_paths(Settings, ())
"""Keys whose environment value is a list or mapping, written as YAML (``[a, b]``)."""


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _env_value(path: tuple[str, ...], raw: str) -> Any:
    if path[-1] in {"default"} and path[0] == "secrets":
        return [part for part in raw.split(",") if part]
    if path[-1] == "headers" or (path in _COLLECTIONS and raw.lstrip().startswith(("[", "{"))):
        # A mapping or a list (headers, intake_tokens, rate_limits...) is written as YAML.
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
    if path[-1] == "intake_tokens":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _strip_kratos_only(courier: Any, where: str, warnings: list[str]) -> None:
    if not isinstance(courier, dict):
        return
    for path, instead in KRATOS_ONLY.items():
        node: Any = courier
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            value = node.pop(path[-1])
            dotted = ".".join((where, *path))
            if path == ("templates",):
                bad = [s for s in _strings(value) if s.strip().lower().endswith(".gotmpl")]
                if bad:
                    raise ConfigError(f"{GOTMPL_HINT} (found {bad[0]})", path=dotted)
            warnings.append(f"{dotted} is a Kratos setting that Postroom ignores: {instead}.")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where (line, column), without quoting the file's text."""
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _model_at(path: list[str], root: type[BaseModel] = Settings) -> type[BaseModel] | None:
    """The settings model that holds the keys at ``path`` (None when it is a plain mapping)."""
    model: type[BaseModel] | None = root
    parts = iter(path)
    for part in parts:
        if model is None:
            return None
        if model is Settings and part == "tenants":
            next(parts, None)  # the tenant's name
            model = TenantSettings
            continue
        info = model.model_fields.get(part)
        ann = info.annotation if info else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def describe_validation_error(error: Mapping[str, Any], root: type[BaseModel] = Settings) -> str:
    """One line for a pydantic error: the dotted key path and what is wrong or allowed."""
    loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    path = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1], root)
        allowed = ", ".join(parent.model_fields) if parent else "see docs/configuration.md"
        return f"{path}: unknown key; allowed here: {allowed}"
    msg = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {msg}"


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Loaded:
    """Read, merge and validate the configuration; raise :class:`ConfigError` on any problem.

    ``path`` None means: ``$POSTROOM_CONFIG`` if set, else ``./postroom.yaml`` if it exists,
    else the embedded defaults.
    """
    env = os.environ if environ is None else environ
    source: Path | None = None
    if path is None and env.get("POSTROOM_CONFIG"):
        path = env["POSTROOM_CONFIG"]
    if path is None and Path("postroom.yaml").is_file():
        path = "postroom.yaml"
    data: dict[str, Any] = {}
    if path is not None:
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the configuration file {source}: {exc.strerror}"
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            # Not str(exc): it quotes the offending line, which may hold a password.
            raise ConfigError(f"{source} is not valid YAML: {_yaml_problem(exc)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source} must hold a mapping of keys at the top level")
        data = loaded
    for name, key_path in ENV_KEYS.items():
        if name in env:
            _set_path(data, key_path, _env_value(key_path, env[name]))
    warnings: list[str] = []
    _strip_kratos_only(data.get("courier"), "courier", warnings)
    tenants = data.get("tenants")
    if isinstance(tenants, dict):
        for name, tenant in tenants.items():
            if isinstance(tenant, dict):
                _strip_kratos_only(tenant.get("courier"), f"tenants.{name}.courier", warnings)
                if name == "default":
                    raise ConfigError(
                        "the top-level courier section is tenant 'default'; choose another name",
                        path="tenants.default",
                    )
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        lines = [describe_validation_error(err) for err in exc.errors()]
        where = f" in {source}" if source else ""
        raise ConfigError(f"invalid configuration{where}:\n  " + "\n  ".join(lines)) from None
    for name in settings.tenant_names():
        check_template_dir(settings.tenant(name), name)
        where = "courier" if name == "default" else f"tenants.{name}.courier"
        check_file_bodies(
            settings.tenant(name).http.request_config, path=f"{where}.http.request_config"
        )
        check_dkim_key_file(settings.tenant(name), path=f"{where}.dkim.private_key_path")
    return Loaded(settings=settings, warnings=warnings, source=source)


def check_dkim_key_file(courier: CourierSettings, *, path: str) -> None:
    """Refuse a DKIM key file that cannot be read or is not a key of ``dkim.algorithm``, when
    the file is read rather than at the first message."""
    raw = courier.dkim.private_key_path
    if not raw:
        return
    try:
        pem = Path(raw).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{raw} cannot be read ({exc.strerror}); point it at the PEM file of the DKIM key",
            path=path,
        ) from None
    load_private_key(pem, algorithm=courier.dkim.algorithm, source=path)


def check_template_dir(courier: CourierSettings, tenant: str) -> None:
    """Refuse an override directory that is missing or holds Go templates."""
    raw = courier.template_override_path
    if not raw:
        return
    where = "courier" if tenant == "default" else f"tenants.{tenant}.courier"
    directory = Path(raw)
    if not directory.is_dir():
        raise ConfigError(
            f"{raw} is not a directory; create it or remove the setting",
            path=f"{where}.template_override_path",
        )
    gotmpl = sorted(directory.rglob("*.gotmpl"))
    if gotmpl:
        raise ConfigError(
            f"{GOTMPL_HINT} (found {gotmpl[0]})", path=f"{where}.template_override_path"
        )
