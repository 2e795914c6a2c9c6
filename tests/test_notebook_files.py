"""The committed notebooks as files: stored the way Jupyter writes them, executed top to bottom, clean outputs.

`tools/run_notebooks.py` stores them so; these tests keep it that way (they read files, run nothing).
"""
import json
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _text(output) -> str:
    t = output.get("text") or output.get("data", {}).get("text/plain", "")
    return "".join(t) if isinstance(t, list) else t


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_as_jupyter_writes_it(path):
    """Open then save in JupyterLab changes nothing: ipykernel's kernelspec, nbformat's layout, no timestamps."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert not [i for i, c in enumerate(nb["cells"]) if "execution" in c.get("metadata", {})], \
        "execution timestamps: store with python tools/run_notebooks.py"
    assert nbformat.writes(nbformat.reads(text, as_version=nbformat.NO_CONVERT)) + "\n" == text, \
        "not in nbformat's written form: store with python tools/run_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_top_to_bottom_without_errors_or_stderr(path):
    code = _code(json.loads(path.read_text(encoding="utf-8")))
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for i, cell in enumerate(code):
        for out in cell["outputs"]:
            assert out["output_type"] != "error" and out.get("name") != "stderr", f"Cell {i}: {_text(out)[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_ignored_output_is_checked_by_an_assert(path):
    code = _code(json.loads(path.read_text(encoding="utf-8")))
    for i, cell in enumerate(code):
        source = "".join(cell["source"])
        if "# NBVAL_IGNORE_OUTPUT" in source or "nbval-ignore-output" in cell["metadata"].get("tags", []):
            following = source + "".join("".join(c["source"]) for c in code[i + 1:i + 2])
            assert "assert " in following, f"Cell {i} ignores its output and nothing asserts what it computed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_are_tags_not_source(path):
    """Test plumbing stays out of the learner's sight: nbval's markers live in the cell tags (the store tool
    moves a `# NBVAL_IGNORE_OUTPUT` comment there), and the tags are ones nbval knows."""
    known = {"nbval-ignore-output", "nbval-skip", "solution"}
    for i, cell in enumerate(_code(json.loads(path.read_text(encoding="utf-8")))):
        source = "".join(cell["source"])
        assert not re.search(r"^\s*#\s*NBVAL_", source, flags=re.M), \
            f"Cell {i}: an nbval comment marker; store with python tools/run_notebooks.py, which makes it a tag"
        unknown = set(cell["metadata"].get("tags", [])) - known
        assert not unknown, f"Cell {i}: unknown tags {sorted(unknown)} (a typo makes nbval compare the output)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_tables_format_their_numbers(path):
    """No rendered table shows pandas' default six decimals (25.800000)."""
    for i, cell in enumerate(_code(json.loads(path.read_text(encoding="utf-8")))):
        for out in cell["outputs"]:
            html = out.get("data", {}).get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            assert len(re.findall(r"\b\d+\.\d{6}\b", html)) < 3, f"Cell {i} shows six-decimal numbers"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solution_code_runs_as_cells_not_as_text(path):
    """A worked solution's code lives in a code cell tagged 'solution' (nbval runs it, asserts check it), never
    as a code block inside a folded <details> solution, where it could go stale unseen."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for block in re.findall(r"<details>.*?</details>", source, flags=re.S):
                assert "```" not in block, f"{path.name} cell {i}: solution code in a <details> block; make it a cell"
        tagged = "solution" in cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and source.startswith("# Solution"):
            assert tagged, f"{path.name} cell {i}: a solution cell must be tagged 'solution' (the student edition blanks it)"
        if tagged:
            assert cell["cell_type"] == "code" and "assert" in source, f"{path.name} cell {i}: a solution cell asserts"
