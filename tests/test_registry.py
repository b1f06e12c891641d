import pytest

import depictqa
from depictqa.registry import Registry, RegistryError


def test_unknown_name_lists_valid_names():
    with pytest.raises(RegistryError, match="valid: clip, timm, tiny-vit"):
        depictqa.encoders.build("clipp")


def test_unknown_argument_lists_valid_arguments():
    with pytest.raises(RegistryError, match=r"no argument 'num_queries'.*valid: bias"):
        depictqa.projectors.REGISTRY.check("linear", {"num_queries": 4})


def test_injected_sizes_may_not_come_from_a_recipe():
    with pytest.raises(RegistryError, match="read from the model's other parts"):
        depictqa.projectors.REGISTRY.check("mlp", {"in_dim": 3})


def test_missing_required_argument():
    with pytest.raises(RegistryError, match="needs model_name"):
        depictqa.encoders.REGISTRY.check("timm", {})


def test_downstream_registration_is_buildable_and_listed():
    reg = Registry("widget")

    @reg.register("my-widget")
    def build(size: int = 3):
        """A widget for tests."""
        return ["w"] * size

    assert reg.list() == ["my-widget"]
    assert reg.describe() == {"my-widget": "A widget for tests."}
    assert reg.build("my-widget", size=2) == ["w", "w"]
    with pytest.raises(RegistryError, match="kebab-case"):
        reg.register("Bad_Name")


def test_public_api_imports_no_wandb_or_webdataset():
    import subprocess
    import sys

    code = ("import sys, depictqa; depictqa.load_recipe; "
            "print('wandb' in sys.modules, 'webdataset' in sys.modules, sorted(depictqa.__all__)[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False False")
    for name in depictqa.__all__:
        assert getattr(depictqa, name) is not None
