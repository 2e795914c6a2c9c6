"""Hand-outs and Colab/Kaggle headers: ``python -m helpers.bundle --out DIR [--student]`` and ``--sync``.

- ``--out DIR`` writes a self-contained copy of every notebook in notebooks/ (later ones are picked up
  automatically). Its set-up cell carries the helpers package and data/ tables as a zip, read from
  the current source at build time, so a bundle uploaded alone to Colab or Kaggle recreates them and
  runs top to bottom.
- ``--student`` also removes worked solutions (``<details>`` blocks in Markdown, cells tagged
  ``solution``) and leaves a short "your turn" prompt; every code cell that is not a solution stays.
- ``--sync`` rewrites, in place, the Colab/Kaggle header cell and the bootstrap lines of every
  notebook's set-up cell from helpers/course.py (the repository address is set there only).
"""
from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import re
import zipfile
from pathlib import Path

from . import course
from .env import repo_root

ROOT = repo_root()
NOTEBOOKS = ROOT / "notebooks"
BOOT_START, BOOT_END = "# >>> course bootstrap", "# <<< course bootstrap"
HEADER_MARK = "<!-- course header: written by python -m helpers.bundle --sync -->"
YOUR_TURN = "*Your turn: work it out, run it, then compare with the teacher's edition.*"
DETAILS = re.compile(r"<details>.*?</details>", re.DOTALL)


def notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return found


def header_cell_source(name: str) -> str:
    return f"""{HEADER_MARK}
[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({course.colab_url(name)}) \
[![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({course.kaggle_url(name)})

- **Colab:** open with the badge; *Runtime → Change runtime type → T4 GPU*; then *Runtime → Run all*.
  The set-up cell fetches this course's helpers from the repository.
- **Kaggle:** open with the badge; in the right-hand panel *Settings → Accelerator → GPU T4 x2* and
  *Internet → on*; then *Run All*.
- **Uploading this file alone?** Use a bundled copy instead (`python -m helpers.bundle`, see the README):
  it carries the helpers in its set-up cell."""


def repo_bootstrap() -> str:
    return f"""{BOOT_START} (from python -m helpers.bundle --sync): on Colab/Kaggle, fetch the course's helpers
import os, subprocess, sys
if not os.path.isdir("helpers") and ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ):
    os.path.isdir("course") or subprocess.run(["git", "clone", "-q", "--depth", "1", "{course.REPOSITORY}", "course"], check=True)
    sys.path.insert(0, os.path.abspath("course"))
{BOOT_END}"""


def payload() -> str:
    """helpers/*.py and data/*.csv as a base64 zip, read now from the repository."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted((ROOT / "helpers").glob("*.py")) + sorted((ROOT / "data").glob("*.csv")):
            z.write(path, path.relative_to(ROOT).as_posix())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def bundle_bootstrap(data: str) -> str:
    return (f"{BOOT_START}: this copy carries the course's helpers/ and data/ tables; the next line writes them here\n"
            f"import base64, io, os, sys, zipfile; zipfile.ZipFile(io.BytesIO(base64.b64decode(\"{data}\")))"
            ".extractall(\".\"); sys.path.insert(0, os.getcwd())\n"
            f"{BOOT_END}")


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _setup_index(nb: dict, where: str) -> int:
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            if BOOT_START not in _source(cell):
                raise ValueError(f"{where}: the first code cell has no '{BOOT_START}' block; run "
                                 "python -m helpers.bundle --sync")
            return i
    raise ValueError(f"{where}: no code cell")


def _replace_bootstrap(source: str, block: str) -> str:
    start, end = source.index(BOOT_START), source.index(BOOT_END) + len(BOOT_END)
    return source[:start] + block + source[end:]


def sync(folder: Path = NOTEBOOKS) -> list[str]:
    """Write the header cell and the set-up cell's bootstrap of every notebook; return the names changed."""
    changed = []
    for path in notebooks(folder):
        nb = json.loads(path.read_text())
        before = json.dumps(nb)
        cells = nb["cells"]
        header = {"cell_type": "markdown", "id": "course-header", "metadata": {},
                  "source": header_cell_source(path.name)}
        if len(cells) > 1 and _source(cells[1]).startswith(HEADER_MARK):
            cells[1]["source"] = header["source"]
        else:
            cells.insert(1, header)
        i = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
        src = _source(cells[i])
        if BOOT_START in src:
            cells[i]["source"] = _replace_bootstrap(src, repo_bootstrap())
        else:   # after the NBVAL marker and its comment line, before the first import
            lines = src.split("\n")
            at = next(k for k, line in enumerate(lines) if not line.startswith("#"))
            cells[i]["source"] = "\n".join(lines[:at] + [repo_bootstrap()] + lines[at:])
        if json.dumps(nb) != before:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path.name)
    return changed


def strip_solutions(nb: dict) -> dict:
    """The student edition of a notebook: no <details> solutions, no cells tagged 'solution'."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" in tags:
            cell["source"] = "# Your turn: write your solution here.\n" if cell["cell_type"] == "code" else YOUR_TURN
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            cell["source"] = DETAILS.sub(YOUR_TURN, _source(cell))
    return nb


def build(out, student: bool = False, folder: Path = NOTEBOOKS) -> list[Path]:
    """Write self-contained copies of every notebook to `out`; return their paths."""
    out = Path(out)
    if out.resolve() == folder.resolve():
        raise ValueError(f"--out {out} is the source folder: choose another, e.g. --out handouts")
    out.mkdir(parents=True, exist_ok=True)
    block = bundle_bootstrap(payload())
    written = []
    for path in notebooks(folder):
        nb = json.loads(path.read_text())
        i = _setup_index(nb, str(path))
        nb["cells"][i]["source"] = _replace_bootstrap(_source(nb["cells"][i]), block)
        if student:
            nb = strip_solutions(nb)
        target = out / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for the self-contained notebooks")
    parser.add_argument("--student", action="store_true", help="remove worked solutions")
    parser.add_argument("--sync", action="store_true", help="rewrite headers and bootstrap lines in notebooks/")
    args = parser.parse_args(argv)
    if args.sync:
        changed = sync()
        print(f"synced {len(changed)} notebook(s) with helpers/course.py: {', '.join(changed) or 'none changed'}")
    if args.out:
        try:
            written = build(args.out, student=args.student)
        except (ValueError, FileNotFoundError) as err:
            parser.exit(2, f"python -m helpers.bundle: {err}\n")
        kind = "student" if args.student else "teacher"
        print(f"wrote the {kind} edition of {len(written)} notebooks to {args.out}")
    if not (args.sync or args.out):
        parser.exit(2, "python -m helpers.bundle: give --out DIR (and --student for hand-outs) or --sync\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
