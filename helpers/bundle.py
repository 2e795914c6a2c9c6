"""Colab/Kaggle headers and hand-outs: ``python -m helpers.bundle --sync`` and ``--out DIR [--student]``.

- ``--sync`` rewrites, in place, every notebook's header cell (badges, or how to open it without them),
  the bootstrap block of its set-up cell and, for 04-07, the Colab metadata asking for a GPU runtime, from
  helpers/course.py. While the course has no public repository (``course.REPOSITORY`` empty) there are no
  badges and nothing is fetched; once it is set, with a release tag, the badges open that tag and the
  set-up cell fetches the helpers of that tag on Colab and Kaggle.
- ``--out DIR`` writes a self-contained copy of every numbered notebook: a hidden cell before the set-up
  carries the helpers package and data/*.csv (read from the current source), so a copy uploaded alone to
  Colab or Kaggle runs top to bottom with no repository and no Internet.
- ``--student`` also removes worked solutions (``<details>`` blocks, cells tagged ``solution``, and
  nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` regions); ``--clear-outputs`` drops every
  stored output.
"""
from __future__ import annotations

import argparse
import base64
import copy
import io
import re
import zipfile
from pathlib import Path

import nbformat

from . import course
from .env import repo_root

ROOT = repo_root()
NOTEBOOKS = ROOT / "notebooks"
BOOT_START, BOOT_END = "# >>> course bootstrap", "# <<< course bootstrap"
HEADER_MARK = "<!-- course header: written by python -m helpers.bundle --sync -->"
PAYLOAD_TAG = "course-helpers"
YOUR_TURN = "*Your turn: work it out, run it, then compare with the teacher's edition.*"
DETAILS = re.compile(r"<details>.*?</details>", re.DOTALL)
GPU_NOTEBOOKS = ("04", "05", "06", "07")          # Colab offers these a GPU runtime (notebook metadata)
BUNDLE_HINT = "upload a bundled copy, which carries them (python -m helpers.bundle; README)"

IMPORT_GUARD = f'''try:
    import helpers.env as env
except ModuleNotFoundError as missing:
    raise SystemExit(f"{{missing}}: this kernel runs {{sys.executable}}, which cannot import the course's helpers. "
                     "Locally: pick the course's kernel (Kernel → Change Kernel…) or run "
                     "`pip install -r requirements.txt` in this environment (README, Troubleshooting). "
                     "On Colab or Kaggle: "
                     "{BUNDLE_HINT}.") from None'''


def notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return found


def header_cell_source(name: str, repository: str | None = None, release: str | None = None) -> str:
    """The second cell of every notebook: badges of the published release, or how to open it without them."""
    if not course.published(repository, release):
        return f"""{HEADER_MARK}
**On Colab or Kaggle:** make a self-contained copy with `python -m helpers.bundle --out handouts` (works
offline) and upload `handouts/{name}` (Colab: *File → Upload notebook*; Kaggle: *File → Import
Notebook*). Locally: the README."""
    release = course.RELEASE if release is None else release
    colab, kaggle = course.colab_url(name, repository, release), course.kaggle_url(name, repository, release)
    return f"""{HEADER_MARK}
[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) \
[![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})

- **Colab:** open with the badge; *Runtime → Change runtime type → T4 GPU*; then *Runtime → Run all*.
  The set-up cell fetches the course's helpers of release {release}.
- **Kaggle:** open with the badge; *Settings → Accelerator → GPU T4 x2* and *Internet → on* (needs a
  phone-verified account); then *Run All*. No Internet? Upload a bundled copy (README, "Colab, Kaggle and hand-outs")."""


def bundle_header_source(name: str) -> str:
    return f"""{HEADER_MARK}
**A self-contained copy** of the course's notebook `{name}`, made by `python -m helpers.bundle`: the hidden cell
before the set-up carries the course's helpers and data tables, so it runs on Colab or Kaggle with no repository
and no Internet. Colab: *Runtime → Change runtime type → T4 GPU*, then *Run all*; Kaggle: *Settings → Accelerator
→ GPU T4 x2*, then *Run All*."""


def repo_bootstrap(repository: str | None = None, release: str | None = None) -> str:
    """The set-up cell's first lines: fetch the helpers of the release on Colab/Kaggle (if published), import them."""
    if not course.published(repository, release):
        return f"""{BOOT_START} (python -m helpers.bundle --sync): the course's helpers, or what to do without them
import sys
{IMPORT_GUARD}
{BOOT_END}"""
    repository = course.REPOSITORY if repository is None else repository
    release = course.RELEASE if release is None else release
    return f"""{BOOT_START} (python -m helpers.bundle --sync): on Colab/Kaggle, fetch the helpers of {release}
import os, subprocess, sys
on_platform = "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ
if on_platform and not os.path.isdir("helpers") and not os.path.isdir("course"):
    got = subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "{release}",
                          "{repository}", "course"],
                         env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}}, capture_output=True, text=True)
    if got.returncode:
        raise SystemExit(f"Could not fetch the course's helpers ({{got.stderr.strip()[:120]}}). On Kaggle turn "
                         "Internet on (Settings → Internet; needs a phone-verified account), or "
                         "{BUNDLE_HINT}.")
if on_platform and os.path.isdir("course"):
    sys.path.insert(0, os.path.abspath("course"))
{IMPORT_GUARD}
{BOOT_END}"""


def payload() -> str:
    """helpers/*.py and data/*.csv as a base64 zip, read now from the repository."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted((ROOT / "helpers").glob("*.py")) + sorted((ROOT / "data").glob("*.csv")):
            z.write(path, path.relative_to(ROOT).as_posix())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def payload_cell(data: str):
    """A collapsed code cell (Colab form, hidden source in JupyterLab) that writes helpers/ and data/ here."""
    cell = nbformat.v4.new_code_cell(
        "#@title The course's helpers/ and data tables, packed by python -m helpers.bundle: run it, no need to read it\n"
        f"import base64, io, os, sys, zipfile\nzipfile.ZipFile(io.BytesIO(base64.b64decode(\"{data}\"))).extractall(\".\")\n"
        "sys.path.insert(0, os.getcwd())")
    cell.metadata.update({"cellView": "form", "jupyter": {"source_hidden": True}, "tags": [PAYLOAD_TAG]})
    return cell


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _setup_index(nb, where: str) -> int:
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and PAYLOAD_TAG not in cell.get("metadata", {}).get("tags", []):
            if BOOT_START not in _source(cell):
                raise ValueError(f"{where}: the first code cell has no '{BOOT_START}' block; run "
                                 "python -m helpers.bundle --sync")
            return i
    raise ValueError(f"{where}: no code cell")


def _replace_bootstrap(source: str, block: str) -> str:
    start, end = source.index(BOOT_START), source.index(BOOT_END) + len(BOOT_END)
    rest = source[end:]
    if rest.startswith("\nimport helpers.env as env"):      # the import now lives inside the block
        rest = rest[len("\nimport helpers.env as env"):]
    return source[:start] + block + rest


def sync(folder: Path = NOTEBOOKS, repository: str | None = None, release: str | None = None) -> list[str]:
    """Write the header cell, the set-up cell's bootstrap and the Colab metadata of every notebook."""
    course.published(repository, release)                 # a half-set address fails here, before any write
    changed = []
    for path in notebooks(folder):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        header = header_cell_source(path.name, repository, release)
        if len(nb.cells) > 1 and _source(nb.cells[1]).startswith(HEADER_MARK):
            nb.cells[1].source = header
        else:
            nb.cells.insert(1, nbformat.v4.new_markdown_cell(header, id="course-header"))
        i = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        src = nb.cells[i].source
        block = repo_bootstrap(repository, release)
        if BOOT_START in src:
            nb.cells[i].source = _replace_bootstrap(src, block)
        else:   # after the NBVAL marker and its comment lines, before the first import
            lines = src.split("\n")
            at = next(k for k, line in enumerate(lines) if not line.startswith("#"))
            nb.cells[i].source = _replace_bootstrap("\n".join(lines[:at] + [block] + lines[at:]), block)
        if path.name[:2] in GPU_NOTEBOOKS:
            nb.metadata["accelerator"] = "GPU"
            nb.metadata["colab"] = {"gpuType": "T4", "provenance": []}
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path.name)
    return changed


def _strip_nbgrader(source: str) -> tuple[str, bool]:
    """Replace each ### BEGIN SOLUTION ... ### END SOLUTION region as nbgrader does."""
    out, inside, changed = [], False, False
    for line in source.split("\n"):
        marker = line.strip()
        if marker == "### BEGIN SOLUTION":
            indent = line[:len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
            inside = changed = True
        elif marker == "### END SOLUTION":
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out), changed


def strip_solutions(nb):
    """The student edition: no <details> solutions, no cells tagged 'solution', no nbgrader solution regions."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" in tags:
            cell["source"] = "# Your turn: write your solution here.\n" if cell["cell_type"] == "code" else YOUR_TURN
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            cell["source"] = DETAILS.sub(YOUR_TURN, _source(cell))
        else:
            cell["source"], changed = _strip_nbgrader(_source(cell))
            if changed:
                cell["outputs"], cell["execution_count"] = [], None
    return nb


def clear_outputs(nb):
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def build(out, student: bool = False, folder: Path = NOTEBOOKS, clear: bool = False) -> list[Path]:
    """Write self-contained copies of every notebook to `out`; return their paths."""
    out = Path(out)
    if out.resolve() == Path(folder).resolve():
        raise ValueError(f"--out {out} is the source folder: choose another, e.g. --out handouts")
    out.mkdir(parents=True, exist_ok=True)
    carried = payload()
    written = []
    for path in notebooks(folder):
        nb = nbformat.read(path, as_version=4)
        i = _setup_index(nb, str(path))
        if len(nb.cells) > 1 and _source(nb.cells[1]).startswith(HEADER_MARK):
            nb.cells[1].source = bundle_header_source(path.name)
        nb.cells[i].source = _replace_bootstrap(nb.cells[i].source, repo_bootstrap("", ""))
        nb.cells.insert(i, payload_cell(carried))
        if student:
            nb = strip_solutions(nb)
        if clear:
            nb = clear_outputs(nb)
        target = out / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for the self-contained notebooks")
    parser.add_argument("--student", action="store_true", help="remove worked solutions")
    parser.add_argument("--clear-outputs", action="store_true", help="drop every stored output")
    parser.add_argument("--sync", action="store_true", help="rewrite headers and bootstrap lines in notebooks/")
    args = parser.parse_args(argv)
    if not (args.sync or args.out):
        parser.exit(2, "python -m helpers.bundle: give --out DIR (and --student for hand-outs) or --sync\n")
    try:
        if args.sync:
            changed = sync()
            print(f"synced {len(changed)} notebook(s) with helpers/course.py: {', '.join(changed) or 'none changed'}")
        if args.out:
            written = build(args.out, student=args.student, clear=args.clear_outputs)
            kind = "student" if args.student else "teacher"
            print(f"wrote the {kind} edition of {len(written)} notebooks to {args.out}")
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"python -m helpers.bundle: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
