from __future__ import annotations

import pytest

from nas_llv.registry import Registry, RegistryError


def test_build_copies_config_pops_type_and_names_the_class():
    reg = Registry("thing", name_attr="thing_name")

    @reg.register("box")
    class Box:
        def __init__(self, size: int = 1) -> None:
            self.size = size

    cfg = {"type": "box", "size": 3}
    assert reg.build(cfg).size == 3 and cfg == {"type": "box", "size": 3}
    assert reg.build("box").size == 1 and Box.thing_name == "box" and reg.names() == ["box"]


def test_duplicates_and_unknown_names_are_errors():
    reg = Registry("thing")
    reg.register("a")(dict)
    with pytest.raises(RegistryError, match="thing 'a' is registered twice"):
        reg.register("a")(list)
    with pytest.raises(RegistryError, match="unknown thing 'b'; allowed: a"):
        reg.get("b")
    with pytest.raises(RegistryError, match="needs a 'type'"):
        reg.build({"size": 1})


def test_unregister_removes_the_entry_and_its_config():
    reg = Registry("thing")
    reg.register("a", config=dict)(lambda: 1)
    assert reg.config_of("a") is dict
    reg.unregister("a")
    assert "a" not in reg and reg.names() == []
    with pytest.raises(RegistryError, match="unknown thing 'a'"):
        reg.unregister("a")


def test_a_registry_imports_every_public_module_of_its_package(tmp_path, monkeypatch):
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from nas_llv.registry import Registry\nREG = Registry('thing', package='plugpkg')\n")
    for module in ("a", "b", "_hidden"):
        (pkg / f"{module}.py").write_text(f"from plugpkg import REG\nREG.register('{module}')(dict)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from plugpkg import REG  # type: ignore[import-not-found]

    assert REG.names() == ["a", "b"]  # one file is one entry; a module named _x is private


@pytest.mark.parametrize("registry", ["LOSSES", "HYPERGRADS", "DATASETS"])
def test_every_loss_hypergradient_method_and_dataset_has_typed_options(registry):
    import dataclasses

    from nas_llv import registry as registries

    reg = getattr(registries, registry)
    untyped = [n for n in reg.names() if not dataclasses.is_dataclass(reg.config_of(n))]
    assert not untyped, f"registered without an options dataclass (config=): {untyped}"
