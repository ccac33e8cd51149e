"""The typed config loader: dataclasses from YAML data, precise errors, overrides, and variant
sections whose chosen entry brings its own options (nas_llv/config.py)."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pytest

from nas_llv.config import ConfigError, Variant, apply_overrides, from_dict, to_dict
from nas_llv.data import DataConfig
from nas_llv.registry import Registry


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    mode: Literal["a", "b"] = "a"

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    steps: int = 3
    inner: Inner = dataclasses.field(default_factory=Inner)
    sizes: tuple[int, ...] = ()
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def test_types_defaults_and_nested_sections():
    cfg = from_dict(Outer, {"name": "x", "inner": {"lr": "1e-2"}, "sizes": [1, 2]}, "r.yaml:")
    assert cfg == Outer("x", 3, Inner(1e-2, "a"), (1, 2), {})
    assert to_dict(cfg) == {"name": "x", "steps": 3, "inner": {"lr": 1e-2, "mode": "a"}, "sizes": [1, 2], "extra": {}}


@pytest.mark.parametrize("data, message", [
    ({}, "r.yaml: missing required key 'name'"),
    ({"name": "x", "step": 2}, "r.yaml: unknown key 'step'; allowed: name, steps, inner, sizes, extra"),
    ({"name": "x", "steps": "two"}, "r.yaml: steps: expected int, got 'two'"),
    ({"name": "x", "steps": True}, "r.yaml: steps: expected int, got True"),
    ({"name": "x", "inner": {"mode": "c"}}, "r.yaml: inner.mode: 'c' is not allowed; allowed: a, b"),
    ({"name": "x", "inner": {"lr": -1}}, "r.yaml: inner: lr=-1.0 must be > 0"),
    ({"name": "x", "inner": {"lr": float("nan")}}, "r.yaml: inner.lr: .nan is not a finite number"),
    ({"name": "x", "extra": {"a": [1, float("inf")]}}, "r.yaml: extra.a[1]: .inf is not a finite number"),
    ({"name": "x", "sizes": 3}, "r.yaml: sizes: expected a list, got 3"),
])
def test_errors_name_the_key_and_what_is_allowed(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data, "r.yaml:")
    assert str(info.value) == message


@dataclasses.dataclass(frozen=True)
class Switchable:
    inner: Inner | None = None   # a section that is off when null


def test_an_optional_section_is_off_when_null_and_checked_when_given():
    assert from_dict(Switchable, {"inner": None}).inner is None
    assert from_dict(Switchable, {"inner": {}}).inner == Inner()
    with pytest.raises(ConfigError, match=r"^r.yaml: inner: unknown key 'rate'; allowed: lr, mode$"):
        from_dict(Switchable, {"inner": {"rate": 1}}, "r.yaml:")
    with pytest.raises(ConfigError, match=r"^r.yaml: inner: lr=-1.0 must be > 0$"):
        from_dict(Switchable, {"inner": {"lr": -1}}, "r.yaml:")
    with pytest.raises(ConfigError, match=r"^r.yaml: inner: expected Inner or null, got 3$"):
        from_dict(Switchable, {"inner": 3}, "r.yaml:")


def test_overrides_are_yaml_and_copy_the_data():
    data = {"name": "x", "inner": {"lr": 1e-3}}
    out = apply_overrides(data, ["inner.lr=2e-3", "steps=5", "extra.k={a: 1}"])
    # YAML 1.1 reads 2e-3 as a string; the float field converts it
    assert out == {"name": "x", "inner": {"lr": "2e-3"}, "steps": 5, "extra": {"k": {"a": 1}}}
    assert from_dict(Outer, out, "o").inner.lr == 2e-3
    assert data == {"name": "x", "inner": {"lr": 1e-3}}


# -- variant sections -------------------------------------------------------------------------------

THINGS = Registry("thing")


@dataclasses.dataclass(frozen=True)
class RoundOptions:
    radius: float = 1.0


@dataclasses.dataclass(frozen=True)
class BoxOptions:
    width: int = 2
    height: int = 2


THINGS.register("round", config=RoundOptions)(lambda: None)
THINGS.register("ball", config=RoundOptions)(lambda: None)
THINGS.register("box", config=BoxOptions)(lambda: None)
THINGS.register("dot")(lambda: None)


@dataclasses.dataclass(frozen=True)
class Section(Variant):
    type: str = "round"
    size: int = 1
    options: Any = None

    @classmethod
    def variant_registry(cls) -> Registry:
        return THINGS


@dataclasses.dataclass(frozen=True)
class NestedSection(Section):
    NESTED = True


def test_a_variant_takes_its_own_options_flat_and_reads_them_as_attributes():
    cfg = from_dict(Section, {"type": "box", "width": 5, "size": 3}, "s")
    assert cfg.options == BoxOptions(5, 2) and cfg.width == 5 and cfg.size == 3
    assert to_dict(cfg) == {"type": "box", "size": 3, "width": 5, "height": 2}
    assert from_dict(Section, to_dict(cfg), "s") == cfg
    assert from_dict(Section, {}, "s").options == RoundOptions()
    assert from_dict(Section, {"type": "dot"}, "s").options is None
    assert from_dict(Section, {"type": "dot", "width": None}, "s").options is None  # null unsets
    with pytest.raises(AttributeError):
        cfg.radius  # noqa: B018  (another variant's option is not there)


def test_nested_variant_options():
    cfg = from_dict(NestedSection, {"type": "box", "options": {"height": 7}}, "s")
    assert cfg.options == BoxOptions(2, 7)
    assert to_dict(cfg) == {"type": "box", "size": 1, "options": {"width": 2, "height": 7}}


@pytest.mark.parametrize("cls, data, message", [
    (Section, {"type": "box", "radius": 2.0},
     "s.radius: belongs to thing ball, round, not 'box' (set it to null to drop it); allowed here: type, size, width, height"),
    (Section, {"type": "dot", "width": 1}, "s.width: belongs to thing box, not 'dot' (set it to null to drop it); allowed here: type, size"),
    (Section, {"type": "round", "colour": 1}, "s: unknown key 'colour'; allowed: type, size, radius"),
    (Section, {"type": "box", "width": "wide"}, "s.width: expected int, got 'wide'"),
    (Section, {"type": "cone"}, "s.type: unknown thing 'cone'; allowed: ball, box, dot, round"),
    (NestedSection, {"type": "box", "width": 3}, "s: unknown key 'width'; allowed: type, size, options"),
    (NestedSection, {"type": "box", "options": {"radius": 1.0}},
     "s.options.radius: belongs to thing ball, round, not 'box' (set it to null to drop it); allowed here: width, height"),
])
def test_keys_of_another_variant_name_it(cls, data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(cls, data, "s")
    assert str(info.value) == message


def test_data_section_options_follow_the_dataset_type():
    cfg = from_dict(DataConfig, {"type": "lol", "root": "d", "split": "eval", "crop": 8}, "data")
    assert (cfg.root, cfg.split, cfg.crop) == ("d", "eval", 8)
    with pytest.raises(ConfigError, match=r"data.demo_count: belongs to dataset demo, demo_sr, not 'folder'"):
        from_dict(DataConfig, {"type": "folder", "root": "d", "demo_count": 4}, "data")
    with pytest.raises(ConfigError, match=r"data: demo_count=1 must be >= 2"):
        from_dict(DataConfig, {"type": "demo", "demo_count": 1}, "data")
