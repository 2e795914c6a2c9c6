"""Execute notebooks top to bottom and store them in the form Jupyter's server writes.

    python tools/run_notebooks.py                      # every notebook in notebooks/
    python tools/run_notebooks.py notebooks/03_*.ipynb # some of them
    python tools/run_notebooks.py --normalise-only     # rewrite the form, run nothing
    python tools/run_notebooks.py --out DIR            # store executed copies in DIR, leave notebooks/ alone

Runs each notebook in a fresh kernel of this Python, in notebooks/, with the test settings
(helpers.env.testing_environment: offline MNIST, CPU), so that `pytest` compares like with like.
Then it writes the notebook the way JupyterLab would save it: ipykernel's kernelspec, no
execution timestamps, nbformat's JSON layout. Opening and saving it in JupyterLab changes nothing.
A cell that raises, or prints to stderr, stops the run with the notebook's name and the cell.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers.env import testing_environment  # noqa: E402

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


MARKERS = {"NBVAL_IGNORE_OUTPUT": "nbval-ignore-output", "NBVAL_SKIP": "nbval-skip"}


def markers_to_tags(cell) -> None:
    """Move nbval's comment markers (and the parenthetical comment line after one) into the cell's tags.

    nbval honours both; a tag keeps test plumbing out of the learner's sight (JupyterLab shows tags in the
    property inspector). Write `# NBVAL_IGNORE_OUTPUT` while editing; storing turns it into the tag.
    """
    if cell.cell_type != "code":
        return
    kept, tags, after_marker = [], list(cell.metadata.get("tags", [])), False
    for line in cell.source.split("\n"):
        text = line.strip()
        marker = text.lstrip("#").strip() if text.startswith("#") else None
        if marker in MARKERS:
            if MARKERS[marker] not in tags:
                tags.append(MARKERS[marker])
            after_marker = True
            continue
        if after_marker and text.startswith("# (") and text.endswith(")"):
            after_marker = False
            continue                             # "(trained numbers differ …)": said by the tag now
        after_marker = False
        kept.append(line)
    if tags:
        cell.metadata["tags"] = tags
    cell.source = "\n".join(kept)


def normalise(nb):
    """What Jupyter's server writes: ipykernel's kernelspec, and no per-cell execution timestamps.

    Also moves nbval's comment markers into cell tags (markers_to_tags)."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        markers_to_tags(cell)
    return nb


def stderr_cells(nb) -> list:
    code = [c for c in nb.cells if c.cell_type == "code"]
    return [i for i, c in enumerate(code)
            if any(o.get("output_type") == "error" or o.get("name") == "stderr" for o in c.get("outputs", []))]


def stderr_text(nb, cells, limit: int = 2000) -> str:
    """What the given code cells wrote to stderr or raised, each cut to `limit` characters."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    parts = []
    for i in cells:
        for o in code[i].get("outputs", []):
            if o.get("name") == "stderr":
                parts.append(f"[cell {i}, stderr] {o.get('text', '')[:limit]}")
            elif o.get("output_type") == "error":
                parts.append(f"[cell {i}, {o.get('ename')}] {str(o.get('evalue', ''))[:limit]}")
    return "\n".join(parts)


def cell_seconds(nb) -> list:
    """(seconds, code cell index) of each executed code cell, from the kernel's timestamps."""
    from datetime import datetime
    code = [c for c in nb.cells if c.cell_type == "code"]
    times = []
    for i, cell in enumerate(code):
        stamps = cell.metadata.get("execution", {})
        start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        if start and end:
            seconds = (datetime.fromisoformat(end.replace("Z", "+00:00"))
                       - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
            times.append((seconds, i))
    return times


def execute(path: Path, out: Path | None = None, timeout: int = 900, slowest: int = 0) -> float:
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=bool(slowest),
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for seconds, i in sorted(cell_seconds(nb), reverse=True)[:slowest]:
        print(f"  code cell {i:2d} (from 0, as nbval counts): {seconds:6.1f} s")
    bad = stderr_cells(nb)
    if bad:
        raise RuntimeError(f"{path.name}: code cell(s) {bad} (counted from 0, as nbval does) wrote to stderr "
                           "or raised; fix the cause before storing the notebook. What they wrote:\n"
                           + stderr_text(nb, bad))
    nbformat.write(normalise(nb), (out / path.name) if out else path)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/run_notebooks.py", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--normalise-only", action="store_true", help="rewrite the stored form, execute nothing")
    parser.add_argument("--out", type=Path, help="write the executed notebooks to this folder instead")
    parser.add_argument("--slowest", type=int, default=0, metavar="N", help="print the N slowest cells of each")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.exit(2, f"run_notebooks: no such notebook: {', '.join(missing)}\n")
    os.environ.update(testing_environment())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if args.normalise_only:
            nbformat.write(normalise(nbformat.read(path, as_version=4)), path)
            print(f"{path.name}: normalised")
            continue
        try:
            seconds = execute(path, args.out, slowest=args.slowest)
        except (CellExecutionError, RuntimeError) as err:
            print(f"{path.name}: FAILED\n{err}", file=sys.stderr)
            return 1
        print(f"{path.name}: executed in {seconds:.0f} s and stored", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
