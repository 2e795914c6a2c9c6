"""Uniform headers, and the hand-outs of python -m helpers.bundle (teacher and student editions)."""
import json
import re
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import bundle, course

SOURCES = bundle.notebooks()


def _load(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_notebook_has_the_uniform_header_and_bootstrap(path):
    cells = _load(path)["cells"]
    title = bundle._source(cells[0])
    assert re.match(rf"# {path.name[:2]} · \S", title) and "**You will learn to**" in title
    assert bundle._source(cells[1]) == bundle.header_cell_source(path.name)   # run --sync after editing course.py
    setup = bundle._source(cells[bundle._setup_index({"cells": cells}, path.name)])
    assert bundle.repo_bootstrap() in setup and "env.setup(" in setup


URL = re.compile(r"https?://[^\s)\]\"'>]+")


def _course_links(text):
    """Links that open or fetch the course itself: Colab and Kaggle badges, GitHub addresses."""
    return [u for u in URL.findall(text) if "colab.research.google.com/github" in u or "kaggle.com/kernels" in u
            or ("github.com/" in u and "/assets/" not in u)]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_links_name_the_configured_repository_and_release(path):
    links = _course_links(path.read_text())
    if not course.published():
        assert links == [], "no public repository is set (helpers/course.py), so no notebook may link to one"
    else:
        assert links and all(course.github_path() in u and f"/{course.RELEASE}/" in u for u in links), links


def test_sync_with_an_address_writes_badges_and_fetches_that_release(tmp_path):
    import shutil

    for path in SOURCES:
        shutil.copy(path, tmp_path / path.name)
    repo, tag = "https://github.com/example-org/example-course", "v9.9"
    assert sorted(bundle.sync(tmp_path, repo, tag)) == [p.name for p in SOURCES]
    for path in SOURCES:
        nb = _load(tmp_path / path.name)
        header = bundle._source(nb["cells"][1])
        assert course.colab_url(path.name, repo, tag) in header and "/blob/v9.9/notebooks/" in header
        setup = bundle._source(nb["cells"][bundle._setup_index(nb, path.name)])
        assert f'"--branch", "{tag}",' in setup and f'"{repo}", "course"' in setup and "GIT_TERMINAL_PROMPT" in setup
        assert setup.count("import helpers.env as env") == 1
        assert (nb["metadata"].get("accelerator") == "GPU") == (path.name[:2] in bundle.GPU_NOTEBOOKS)
    assert bundle.sync(tmp_path, repo, tag) == []                      # a second sync changes nothing
    bundle.sync(tmp_path, "", "")                                      # and back: no link left
    assert all(_course_links((tmp_path / p.name).read_text()) == [] for p in SOURCES)
    with pytest.raises(ValueError, match="RELEASE"):
        bundle.sync(tmp_path, repo, "")


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    teacher = tmp_path_factory.mktemp("teacher")
    student = tmp_path_factory.mktemp("student")
    bundle.build(teacher)
    bundle.build(student, student=True)
    return teacher, student


def test_teacher_edition_is_the_source_but_for_header_payload_and_bootstrap(editions):
    teacher, _ = editions
    assert sorted(p.name for p in teacher.glob("*.ipynb")) == [p.name for p in SOURCES]
    for path in SOURCES:
        src, out = _load(path), _load(teacher / path.name)
        i = bundle._setup_index(src, path.name)
        payload = out["cells"].pop(i)                                  # the hidden cell that carries helpers/
        assert payload["metadata"]["jupyter"]["source_hidden"] and payload["metadata"]["cellView"] == "form"
        assert "base64.b64decode" in bundle._source(payload) and len(out["cells"]) == len(src["cells"])
        assert "self-contained copy" in bundle._source(out["cells"][1]) and "Use a bundled copy" not in json.dumps(out)
        for k, (a, b) in enumerate(zip(src["cells"], out["cells"])):
            if k == i:
                strip = lambda c: bundle._replace_bootstrap(bundle._source(c), "")
                assert strip(a) == strip(b) and a["outputs"] == b["outputs"]
                assert "git" not in bundle._source(b)                 # a bundled copy fetches nothing
            elif k != 1:
                assert a == b


def test_student_edition_has_no_solutions(editions):
    _, student = editions
    solutions = 0
    for path in SOURCES:
        src, out = _load(path), _load(student / path.name)
        solutions += sum(bundle._source(c).count("<details>") for c in src["cells"])
        text = json.dumps(out["cells"])
        assert "<details>" not in text and "Solution</summary>" not in text
        assert all("solution" not in c.get("metadata", {}).get("tags", []) or "Your turn" in bundle._source(c)
                   for c in out["cells"])
        assert len(out["cells"]) == len(src["cells"]) + 1
    assert solutions >= 2 * len(SOURCES)           # every notebook had worked solutions to remove


def test_nbgrader_markers_and_cleared_outputs():
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": 4,
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": "6"}],
                     "source": "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\nprint(f(3))"}]}
    out = bundle.strip_solutions(nb)["cells"][0]
    assert out["source"] == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(f(3))"
    assert out["outputs"] == [] and nb["cells"][0]["outputs"]          # the source notebook is not modified
    assert bundle.clear_outputs({"cells": [{"cell_type": "code", "outputs": [1], "execution_count": 1}]})[
        "cells"][0] == {"cell_type": "code", "outputs": [], "execution_count": None}


def test_strip_solutions_handles_tagged_cells():
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": "answer = 42",
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": "42"}], "execution_count": 3},
                    {"cell_type": "markdown", "metadata": {}, "source": "Q?\n<details>A</details>\nmore"}]}
    out = bundle.strip_solutions(nb)
    assert out["cells"][0]["source"].startswith("# Your turn") and out["cells"][0]["outputs"] == []
    assert out["cells"][1]["source"] == f"Q?\n{bundle.YOUR_TURN}\nmore"
    assert nb["cells"][0]["source"] == "answer = 42"          # the source is not modified


NO_HELPERS = ("import sys\n"
              "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
              "sys.path[:] = [p for p in sys.path if p and not p.rstrip('/').endswith({root!r})]\n"
              "from ipykernel import kernelapp\n"
              "kernelapp.launch_new_instance()\n")


def test_bundled_notebook_runs_alone_without_the_repository(editions, tmp_path, monkeypatch):
    """The student bundle of 02, in an empty folder, with a kernel that cannot import the repo's helpers."""
    _, student = editions
    kernels = tmp_path / "jupyter" / "kernels" / "nohelpers"
    kernels.mkdir(parents=True)
    code = NO_HELPERS.format(root=str(bundle.ROOT))
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", code, "-f", "{connection_file}"], "display_name": "no helpers",
        "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    work = tmp_path / "empty"
    work.mkdir()
    name = next(p.name for p in SOURCES if p.name.startswith("02_"))
    nb = nbformat.read(student / name, as_version=4)
    assert "git" not in nb.cells[bundle._setup_index(nb, name)].source
    probe = nbformat.v4.new_code_cell("import importlib.util; print(importlib.util.find_spec('helpers'))")
    where = nbformat.v4.new_code_cell("import helpers; print(helpers.__file__)")
    nb.cells = [probe] + nb.cells + [where]
    NotebookClient(nb, kernel_name="nohelpers", timeout=600, resources={"metadata": {"path": str(work)}}).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "None"          # the repository's helpers were not importable
    assert nb.cells[-1].outputs[0]["text"].strip().startswith(str(work))
    assert (work / "helpers" / "env.py").exists() and (work / "data" / "geforce_specs.csv").exists()
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_bundle_cli_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_:
        bundle.main([])
    assert exit_.value.code == 2 and "--out DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        bundle.main(["--out", str(bundle.NOTEBOOKS)])
    assert exit_.value.code == 2 and "source folder" in capsys.readouterr().err
