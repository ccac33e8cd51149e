"""Typed, frozen configuration: YAML mappings -> dataclasses, with precise errors.

``from_dict(cls, data, where)`` walks a dataclass's fields, rejects unknown keys (naming the
key's path and the allowed keys), checks types, then calls the dataclass's optional
``validate()`` for ranges. ``apply_overrides`` parses ``a.b.c=value`` with ``yaml.safe_load``
(YAML tags refused). NaN and infinities are refused everywhere: in files, overrides and
free-form (``Any``) values.
"""
from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import logging
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar, Union

import yaml

T = TypeVar("T")
log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """Bad user configuration; the message names the file, the key and what is allowed."""


def first_line(exc: BaseException, empty: str = "", limit: int = 200) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters (``empty`` when it has none):
    a foreign library's error, quoted in one line of ours."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else empty


def read_text(path: str | Path, kind: str = "YAML") -> str:
    """The UTF-8 text of a file, or one ConfigError line: missing, a folder, unreadable, binary."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a {kind} file")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in raw:
        raise ConfigError(f"{path}: not a text {kind} file (it holds NUL bytes; is it binary?)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text {kind} file (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start} is not UTF-8)") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line saying what is wrong, and where when PyYAML knows (line numbers from 1)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a one-line error for a missing, binary or malformed file, or a
    non-finite number (.nan, .inf) anywhere in it."""
    path = Path(path)
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        what = "an empty file" if data is None else type(data).__name__
        raise ConfigError(f"{path}: expected a mapping (key: value lines) at the top level, got {what}")
    check_finite(data, f"{path}:")
    return data


def check_finite(value: Any, where: str, strings: bool = False) -> None:
    """Raise ConfigError naming the key path of the first NaN or infinite float inside ``value``;
    with ``strings``, also of a string that reads as one ('nan', 'inf': YAML leaves 1e-3 a string,
    so free-form options take number-like strings as numbers)."""
    if (isinstance(value, float) or strings and isinstance(value, str)) and _non_finite(value):
        shown = _yaml_number(value) if isinstance(value, float) else repr(value)
        raise ConfigError(f"{_at(where)} {shown} is not a finite number")
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_finite(v, _join(where, k), strings)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite(v, f"{where} [{i}]" if where.endswith(":") else f"{where}[{i}]", strings)


def _yaml_number(value: float) -> str:
    return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "")
    if tp is float:
        return "a number"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        check_finite(value, where, strings=True)
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None  # null is off, not a section of defaults (a dataclass would take None as {})
        sections = [a for a in args if dataclasses.is_dataclass(a)]
        if isinstance(value, Mapping) and len(sections) == 1:
            return from_dict(sections[0], value, where)  # its own error: the key and the allowed keys
        if float in args and _non_finite(value):
            _finite_float(value, where)  # raises: say "not a finite number", not "expected ..."
        for arg in typing.get_args(tp):
            with contextlib.suppress(ConfigError):
                return _convert(arg, value, where)
        raise ConfigError(f"{_at(where)} expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{_at(where)} {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, where)
    if origin in (list, tuple, Sequence, collections.abc.Sequence):  # Sequence[str]'s origin is the abc
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_at(where)} expected a list, got {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        return tuple(_convert(arg, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{_at(where)} expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp) or (str, Any)
        return {str(k): _convert(vt, v, _join(where, k)) for k, v in value.items()}
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{_at(where)} expected null, got {value!r}")
        return None
    if tp is float and not isinstance(value, bool) and isinstance(value, (int, float, str)):
        return _finite_float(value, where)
    if isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{_at(where)} expected {_type_name(tp)}, got {value!r}")


def _finite_float(value: int | float | str, where: str) -> float:
    """YAML reads 1e-3 as a string: such strings are numbers too, but 'nan' and 'inf' are refused."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{_at(where)} expected a number, got {value!r}") from None
    check_finite(value, where, strings=True)
    return number


def _non_finite(value: Any) -> bool:
    try:
        return isinstance(value, (float, str)) and not math.isfinite(float(value))
    except (ValueError, OverflowError):
        return False


def _at(where: str) -> str:
    return where if where.endswith(":") else f"{where}:"


def _join(where: str, key: object) -> str:
    """'file.yaml:' + 'a' -> 'file.yaml: a'; 'file.yaml: a' + 'b' -> 'file.yaml: a.b'."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` prefixes error messages (file and key path)."""
    return checked(cls, cls(**field_values(cls, data, where)), where)


def options_of(fn: Any, name: str) -> type:
    """A frozen dataclass ``name`` of ``fn``'s options: the init fields of a dataclass (with its
    ``validate``), else the keyword parameters of a function or constructor, typed and defaulted
    as written there. So an entry's own signature is the one place its options are written; a
    parameter without a default is a required key."""
    import inspect

    if dataclasses.is_dataclass(fn):
        hints = typing.get_type_hints(fn)
        fields = [(f.name, hints[f.name], dataclasses.field(default=f.default, default_factory=f.default_factory))
                  for f in dataclasses.fields(fn) if f.init]
        return dataclasses.make_dataclass(name, fields, frozen=True, namespace={"validate": fn.validate})
    hints = typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn)
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    fields = [(p.name, hints.get(p.name, Any)) if p.default is p.empty else
              (p.name, hints.get(p.name, Any), dataclasses.field(default=p.default)) for p in params]
    return dataclasses.make_dataclass(name, fields, frozen=True)


def register_with_options(registry: Any, name: str) -> Any:
    """``@registry.register(name, config=...)`` whose options dataclass is made from the entry's
    own signature (``options_of``): a recipe then checks its keys, types and ranges on loading."""
    def deco(obj: Any) -> Any:
        return registry.register(name, config=options_of(obj, f"{obj.__name__}Options"))(obj)

    return deco


def entry_options(registry: Any, cfg: Any, where: str) -> Any:
    """The typed options of ``cfg`` = ``{type: name, **options}``, an entry of ``registry`` (a loss,
    a hypergradient method): checked against the dataclass it was registered with; a key of another
    entry fails naming that entry (as a ``Variant``'s keys do)."""
    from .registry import RegistryError

    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"{_at(where)} expected a mapping with 'type' (one of: {', '.join(registry.names())}), got {cfg!r}")
    try:
        return variant_options(registry, str(cfg["type"]), {k: v for k, v in cfg.items() if k != "type"},
                               where, ["type"])
    except RegistryError as exc:
        raise ConfigError(f"{_at(_join(where, 'type'))} {exc}") from None


def build_entry(registry: Any, cfg: Any, where: str, **extra: Any) -> Any:
    """Build ``{type: name, **options}`` from its typed options (``entry_options``)."""
    options = entry_options(registry, cfg, where)
    kwargs = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)} if options is not None else {}
    return registry.get(str(cfg["type"]))(**kwargs, **extra)


def field_values(cls: type, data: Mapping[str, Any] | None, where: str = "config") -> dict[str, Any]:
    """``data`` checked against the fields of dataclass ``cls``: known keys, required keys, types.
    A ``Variant`` section also takes the keys of the variant it names (see ``Variant``), and a
    dataclass with ``OLD_KEYS`` (old key -> new key) the old spellings of renamed keys."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_at(where)} expected a mapping, got {data!r}")
    data = _new_spellings(cls, data, where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    variant = issubclass(cls, Variant)
    own = {k: v for k, v in data.items() if k not in fields or (variant and k in cls.OWN)}
    if variant:
        for name in cls.OWN:
            fields.pop(name)
        kwargs, own = cls.parse_extra(own, where)
        kwargs["options"] = cls.parse_options(own, data, where, [*fields, *cls.extra_keys()])
    else:
        kwargs = {}
        if own:
            raise ConfigError(f"{_at(where)} unknown key '{sorted(own)[0]}'; allowed: {', '.join(fields) or 'none'}")
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_at(where)} missing required key '{name}'")
    return kwargs


def _new_spellings(cls: type, data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """``data`` with each old key of ``cls.OLD_KEYS`` read as its new key, one warning line each, so
    recipes and run folders written before a rename still load."""
    old = [k for k in getattr(cls, "OLD_KEYS", {}) if k in data]
    if not old:
        return data
    out = dict(data)
    for key in old:
        new = cls.OLD_KEYS[key]
        if new in data:
            raise ConfigError(f"{_at(_join(where, key))} is the old spelling of '{new}', which is given too; keep '{new}'")
        log.warning("%s is the old spelling of '%s'; read as that (write '%s')", _at(_join(where, key)), new, new)
        out[new] = out.pop(key)
    return out


class Variant:
    """A config section whose ``type``-like key picks a registered variant (a dataset, a strategy,
    a network) that brings its own options dataclass (``Registry.register(name, config=...)``).

    The section's own fields are shared by every variant; the chosen variant's options are typed
    and checked as their own dataclass and kept in ``options``. With ``NESTED`` False they are
    written among the section's keys (``data: {type: demo, demo_count: 8}``); with True under
    ``options:`` (``network: {type: ruas, options: {variant: ruas}}``). A key that belongs to
    another variant fails naming the variants it belongs to. Reading ``section.name`` falls
    through to the options, so ``recipe.search.beta`` reads the strategy's ``beta`` (and to what
    ``parse_extra`` filled: ``recipe.search.cost`` reads the search extension's options).
    """

    VARIANT_KEY: typing.ClassVar[str] = "type"
    NESTED: typing.ClassVar[bool] = False
    # fields that are not keys of the section: filled from the keys other than the named fields
    # (``options`` by ``parse_options``, the rest by ``parse_extra``), written back among them
    OWN: typing.ClassVar[tuple[str, ...]] = ("options",)

    @classmethod
    def variant_registry(cls) -> Any:
        raise NotImplementedError

    @classmethod
    def parse_options(cls, own: Mapping[str, Any], data: Mapping[str, Any], where: str,
                      shared: list[str]) -> Any:
        """The chosen variant's options dataclass from its keys (``own``: the keys not shared)."""
        from .registry import RegistryError

        registry = cls.variant_registry()
        name = data.get(cls.VARIANT_KEY, next(f.default for f in dataclasses.fields(cls) if f.name == cls.VARIANT_KEY))
        if cls.NESTED:
            stray = sorted(k for k in own if k != "options")
            if stray:
                raise ConfigError(f"{_at(where)} unknown key '{stray[0]}'; allowed: {', '.join([*shared, 'options'])}")
            own, where = own.get("options") or {}, _join(where, "options")
            if not isinstance(own, Mapping):
                raise ConfigError(f"{_at(where)} expected a mapping, got {own!r}")
        try:
            return variant_options(registry, str(name), own, where, [] if cls.NESTED else shared)
        except RegistryError as exc:
            raise ConfigError(f"{_at(_join(where, cls.VARIANT_KEY))} {exc}") from None

    @classmethod
    def extra_keys(cls) -> list[str]:
        """Keys of the section beside its fields and its variant's (none by default; ``parse_extra``)."""
        return []

    @classmethod
    def parse_extra(cls, own: Mapping[str, Any], where: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
        """(init arguments of the ``OWN`` fields other than ``options``, the keys of ``own`` left for
        the variant): a section with keys of its own beside its variant's (``extra_keys``) takes
        them here."""
        return {}, own

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("__"):
            for own in type(self).OWN:  # the variant's options, then what parse_extra filled
                value = self.__dict__.get(own)
                if isinstance(value, Mapping) and name in value:
                    return value[name]
                if dataclasses.is_dataclass(value) and name in {f.name for f in dataclasses.fields(value)}:
                    return getattr(value, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def variant_options(registry: Any, name: str, own: Mapping[str, Any], where: str, shared: list[str]) -> Any:
    """Variant ``name``'s options dataclass from its keys ``own`` (``shared``: the section's other
    keys, allowed beside them); a key of another variant fails naming it. Raises RegistryError for
    an unknown ``name``."""
    options_cls = registry.config_of(name)
    allowed = shared + variant_keys(registry, name)
    # another variant's key set to null is unset (an override can drop what a recipe set)
    own = {k: v for k, v in own.items() if k in allowed or v is not None}
    for key in own:
        if key not in allowed:
            raise ConfigError(_refused(registry, name, key, allowed, where))
    return from_dict(options_cls, own, where) if options_cls is not None else None


def variant_keys(registry: Any, name: str) -> list[str]:
    """The option keys of ``registry``'s variant ``name`` (RegistryError for an unknown name)."""
    return [f.name for f in dataclasses.fields(registry.config_of(name) or _NoOptions)]


@dataclasses.dataclass(frozen=True)
class _NoOptions:
    """A variant registered without options takes none."""


def _refused(registry: Any, name: str, key: str, allowed: list[str], where: str) -> str:
    """Why ``key`` is refused in section ``where``: it belongs to other variants (named), or to none."""
    owners = [n for n in registry.names() if key in variant_keys(registry, n)]
    if owners:
        return (f"{_at(_join(where, key))} belongs to {registry.kind} {', '.join(owners)}, not '{name}' "
                f"(set it to null to drop it); allowed here: {', '.join(allowed) or 'none'}")
    return f"{_at(where)} unknown key '{key}'; allowed: {', '.join(allowed) or 'none'}"


def checked(cls: type, obj: T, where: str = "config") -> T:
    """``obj`` after its ``validate()`` (range checks) passed; a ValueError becomes a ConfigError."""
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"{_at(where)} {exc}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain YAML-ready data from a (nested) dataclass; a ``Variant``'s options are written as it
    reads them (among its keys, or under ``options:``)."""
    if isinstance(obj, Variant) and not obj.NESTED:
        out = {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in obj.OWN}
        for own in obj.OWN:
            out.update(to_dict(getattr(obj, own)) or {})
        return out
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b=value`` overrides applied (values parsed by yaml.safe_load)."""
    out = yaml.safe_load(yaml.safe_dump(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}': expected KEY=VALUE, e.g. search.epochs=2")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{p}' is not a mapping")
        node[leaf] = override_value(item, raw)
    return out


def override_value(item: str, raw: str) -> Any:
    """The plain YAML value of override ``item`` (its text after '='): no tags, no NaN or inf."""
    try:
        tags = [t.value for t in yaml.scan(raw) if isinstance(t, yaml.TagToken)]
        if tags:
            handle, suffix = tags[0]
            raise ConfigError(f"override '{item}': YAML tags ({handle or ''}{suffix}) are not allowed; "
                              f"give a plain value (number, string, list or mapping)")
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{item}': not valid YAML ({yaml_problem(exc)})") from None
    check_finite(value, f"override '{item}':")
    return value


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False) -> None:
    """Raise ValueError unless lo <= value <= hi (lo < value when lo_open)."""
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{name}={value} must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and value > hi:
        raise ValueError(f"{name}={value} must be <= {hi}")
