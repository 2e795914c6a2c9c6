"""Build a fresh environment for one version set and run the course's tests in it.

    python tools/test_version_set.py colab             # Colab's set: Python 3.13, its TensorFlow/Keras/NumPy pins
    python tools/test_version_set.py kaggle            # Kaggle's: Python 3.12, the same pins
    python tools/test_version_set.py lowest            # the lowest versions requirements.txt allows
    python tools/test_version_set.py colab --notebooks notebooks/04_cnn_keras.ipynb --venv /tmp/v
    python tools/test_version_set.py lowest --deselect tests/test_bench_cli.py::test_name   # all but that test

A set is a file in tools/versions/: pip constraints (`name==version`) under a header of `# key: value`
lines: `python` (the minor version to build with), `nbval` (strict or lax) and `source` (where the pins were
read, and when). The script finds that Python (on PATH as pythonX.Y, or under pyenv), makes a virtual
environment with it, installs requirements.txt constrained to the set's pins (so the set changes only what
it pins), checks that pip installed exactly those versions, then runs the unit tests and every notebook
under nbval, strict unless the set says lax. Its last line gives the times and the pass count.
Runs with any Python 3; needs the package registry for the install.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "tools" / "versions"


def read_set(name: str) -> dict:
    """{'name', 'path', 'python': (3, 13), 'nbval': 'strict'|'lax', 'source', 'pins': {package: version}}."""
    path = SETS / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SETS.glob("*.txt")))
        raise SystemExit(f"test_version_set: no version set {name!r} ({path} is missing); known sets: {known}")
    meta, pins = {}, {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        match = re.fullmatch(r"#\s*(\w[\w ]*):\s*(.+)", line)
        if match:
            meta[match[1].strip()] = match[2].strip()
        elif line and not line.startswith("#"):
            pin = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([\w.]+)", line)
            if not pin:
                raise SystemExit(f"{path}:{number}: {line!r} is not a pin; write name==version")
            pins[pin[1].lower()] = pin[2]
    try:
        python = tuple(int(x) for x in meta["python"].split("."))
        assert len(python) == 2
    except (KeyError, ValueError, AssertionError):
        raise SystemExit(f"{path}: needs a '# python: 3.NN' line (the minor version to build with)") from None
    nbval = meta.get("nbval", "strict")
    if nbval not in ("strict", "lax"):
        raise SystemExit(f"{path}: '# nbval: {nbval}' must be strict or lax")
    return {"name": name, "path": path, "python": python, "nbval": nbval, "source": meta.get("source", ""),
            "pins": pins}


def find_python(version: tuple) -> str | None:
    """An interpreter of this minor version: pythonX.Y on PATH, then pyenv's versions."""
    wanted = f"{version[0]}.{version[1]}"
    candidates = [shutil.which(f"python{wanted}")]
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    if shutil.which("pyenv"):
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False).stdout.strip())
    for root in filter(None, roots):
        candidates += sorted(glob.glob(f"{root}/versions/{wanted}.*/bin/python{wanted}"), reverse=True)
    for exe in filter(None, candidates):
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip() == wanted:
            return exe
    return None


def run(cmd, **kw):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=kw.pop("check", False), **kw)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/test_version_set.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("set", help="a file name in tools/versions/ without .txt: colab, kaggle, lowest, newest")
    parser.add_argument("--venv", type=Path, help="where to build the environment (default: .venv-SET)")
    parser.add_argument("--reuse", action="store_true", help="reuse the environment if it exists (no fresh install)")
    parser.add_argument("--notebooks", nargs="*", help="test only these paths (default: tests/ and notebooks/)")
    parser.add_argument("--deselect", action="append", default=[], metavar="NODEID",
                        help="leave out this test (pytest's --deselect; repeatable)")
    args = parser.parse_args(argv)

    vset = read_set(args.set)
    wanted = f"{vset['python'][0]}.{vset['python'][1]}"
    python = find_python(vset["python"])
    if python is None:
        print(f"test_version_set: the {vset['name']} set needs Python {wanted}, and none was found: not on PATH "
              f"as python{wanted}, not under pyenv ($PYENV_ROOT or ~/.pyenv/versions/{wanted}.*). Install it "
              f"(pyenv install {wanted}, or your system's python{wanted} with its venv module) and run again.",
              file=sys.stderr)
        return 2
    venv = (args.venv or ROOT / f".venv-{vset['name']}").resolve()
    bin_ = venv / ("Scripts" if os.name == "nt" else "bin")
    t_all = time.perf_counter()
    if not (args.reuse and (bin_ / "python").exists()):
        shutil.rmtree(venv, ignore_errors=True)
        if run([python, "-m", "venv", venv]).returncode:
            return 1
        run([bin_ / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        t0 = time.perf_counter()
        if run([bin_ / "python", "-m", "pip", "install", "--quiet", "-r", "requirements.txt",
                "-c", vset["path"]]).returncode:
            print(f"test_version_set: pip could not install requirements.txt under {vset['path'].name}'s pins "
                  f"with Python {wanted}", file=sys.stderr)
            return 1
        install_s = time.perf_counter() - t0
    else:
        install_s = 0.0
    script = ("import sys, importlib.metadata as md; print('python', '%d.%d.%d' % sys.version_info[:3]); "
              "[print(n, md.version(n)) for n in sys.argv[1:]]")
    report = subprocess.run([bin_ / "python", "-c", script, *vset["pins"]],
                            capture_output=True, text=True, check=True).stdout
    found = dict(line.split(" ", 1) for line in report.split("\n") if line)
    wrong = {n: found.get(n) for n, v in vset["pins"].items() if found.get(n) != v}
    if wrong:
        print(f"test_version_set: pip installed {wrong}, not the pins of {vset['path'].name}", file=sys.stderr)
        return 1
    versions = ", ".join(f"{n} {v}" for n, v in found.items())
    print(f"{vset['name']} set: {versions}; install {install_s:.0f} s", flush=True)

    paths = args.notebooks or ["tests", "notebooks"]
    mode = ["--nbval-lax"] if vset["nbval"] == "lax" else ["--nbval"]
    t0 = time.perf_counter()
    # addopts="" drops pyproject's --nbval so that the set's mode is the only one
    result = run([bin_ / "python", "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", *mode,
                  "--nbval-current-env", "--nbval-cell-timeout=900", "-q",
                  *(f"--deselect={node}" for node in args.deselect), *paths], capture_output=True, text=True)
    tests_s = time.perf_counter() - t0
    out = result.stdout
    failures = out.find("= FAILURES =")                 # every failure in full, then pytest's summary
    print(out[max(0, failures - 200):][-40000:] if failures >= 0 else out[-6000:], result.stderr[-2000:], sep="\n")
    summary = (result.stdout.strip().splitlines() or ["(pytest printed nothing)"])[-1].strip("= ")
    print(f"{vset['name']} set ({vset['nbval']} nbval): {versions}; install {install_s:.0f} s; "
          f"pytest {' '.join(paths)}: {summary} ({tests_s:.0f} s); whole run {time.perf_counter() - t_all:.0f} s")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
