"""The version sets of tools/versions/: well-formed, allowed by requirements.txt, and the source of what the
course says it was tested with (helpers.env.TESTED, the README's version lines)."""
import importlib.util
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from helpers import env

ROOT = Path(__file__).resolve().parent.parent
SET_NAMES = sorted(p.stem for p in (ROOT / "tools" / "versions").glob("*.txt"))


def _tool():
    spec = importlib.util.spec_from_file_location("test_version_set", ROOT / "tools" / "test_version_set.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _requirements():
    reqs = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            reqs[req.name.lower()] = req
    return reqs


def test_the_platform_sets_exist():
    assert {"colab", "kaggle", "lowest", "newest"} <= set(SET_NAMES)


@pytest.mark.parametrize("name", SET_NAMES)
def test_each_set_is_allowed_by_requirements_txt(name):
    vset = _tool().read_set(name)
    assert vset["source"] and vset["nbval"] in ("strict", "lax") and {"tensorflow", "keras", "numpy"} <= set(vset["pins"])
    assert env.MINIMUM["python"] <= vset["python"]
    reqs = _requirements()
    for package, version in vset["pins"].items():
        assert package in reqs, f"{name}: {package} is pinned but not in requirements.txt"
        assert reqs[package].specifier.contains(version), f"{name}: {package}=={version} is outside {reqs[package]}"


def test_tested_versions_are_the_newest_of_the_sets():
    """A learner on a tested set (Colab's Python 3.13, say) sees no "newer than tested" note."""
    tool = _tool()
    sets = [tool.read_set(name) for name in SET_NAMES]
    newest = {"python": max(s["python"] for s in sets)}
    for package in ("tensorflow", "keras"):
        newest[package] = max(tuple(int(x) for x in s["pins"][package].split(".")[:2]) for s in sets)
    assert env.TESTED == newest
    for s in sets:
        found = {"python": "{}.{}.0".format(*s["python"]), "tensorflow": s["pins"]["tensorflow"], "keras": s["pins"]["keras"]}
        assert env.check_versions(found) == [], s["name"]


def test_the_readme_lists_every_set_with_its_pins_and_last_run():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tool = _tool()
    for name in SET_NAMES:
        vset = tool.read_set(name)
        rows = [line for line in readme.splitlines() if line.startswith(f"| `{name}` |")]
        assert len(rows) == 1, f"README: one row of the version-set table for {name}"
        row = rows[0]
        assert "{}.{}".format(*vset["python"]) in row and re.search(r"20\d\d-\d\d-\d\d", row), row
        for package in ("tensorflow", "keras", "numpy"):
            assert vset["pins"][package] in row, f"README's {name} row lacks {package} {vset['pins'][package]}"


def test_a_missing_set_or_python_gets_a_clear_message(tmp_path, monkeypatch, capsys):
    tool = _tool()
    with pytest.raises(SystemExit, match="no version set 'colab2'.*known sets: .*colab"):
        tool.read_set("colab2")
    monkeypatch.setattr(tool, "find_python", lambda version: None)
    assert tool.main(["kaggle", "--venv", str(tmp_path / "v")]) == 2
    assert "needs Python 3.12, and none was found" in capsys.readouterr().err


def test_environment_yml_names_the_readme_command():
    first = (ROOT / "environment.yml").read_text().splitlines()[0]
    assert "jupyter lab --ServerApp.root_dir=. notebooks/01_data_preprocessing.ipynb" in first
