"""Run the core tests against several Ultralytics releases, each in a throwaway virtual environment.

Each environment is created with ``--system-site-packages`` so it reuses the installed torch, torchvision, numpy and
the rest; only ``ultralytics==VERSION`` is installed into it (``--no-deps``), plus whichever of that release's
requirements are not installed at all (e.g. pandas/seaborn for early 8.3.x). Requirements that are installed but
outside the release's own pin (e.g. 8.3.0 asks for numpy<2) keep the system version; the JSON lists them. The checkout
is put first on ``PYTHONPATH``, so the kit under test is this tree. Tests run offline with pytest's junit report
counted per version.

    python scripts/version_matrix.py 8.3.0 8.4.190 [--tests tests/test_compat.py ...] [-k EXPR] [--out FILE] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["CORE_TESTS", "CORE_DESELECT", "main", "make_env", "run_tests"]

ROOT = Path(__file__).resolve().parent.parent
CORE_TESTS = ["tests/test_compat.py", "tests/test_fuzz_rows.py", "tests/test_integration.py", "tests/test_checkpoints.py"]
CORE_DESELECT = "not test_config_builds_every_scale and not test_config_forward"  # many large builds, no new surface
_REUSED = {"torch", "torchvision", "numpy"}  # never replaced in the environment: the point is to reuse them

# Run inside the new environment: the release's requirements that no installed distribution provides, and those
# installed at a version outside the release's pin. Markers are evaluated there, so "extra" requirements drop out.
_MISSING_REQS = r"""
import json, importlib.metadata as md
from packaging.requirements import Requirement
missing, mismatched = [], []
for line in md.requires("ultralytics") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        have = md.version(req.name)
    except md.PackageNotFoundError:
        missing.append([req.name, str(req)])
        continue
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        mismatched.append(f"{req} (kept {have})")
print(json.dumps({"missing": missing, "mismatched": mismatched}))
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``, raising with its output if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def make_env(version: str, root: Path) -> tuple[Path, dict]:
    """Create ``root/uvenv-VERSION`` with ``ultralytics==VERSION`` on top of the system packages.

    Args:
        version (str): Ultralytics release.
        root (Path): Directory for the environment.

    Returns:
        (tuple[Path, dict]): The environment's python, and ``{"installed": [...], "mismatched": [...]}``.
    """
    env_dir = root / f"uvenv-{version}"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)])
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(pip + ["--no-deps", f"ultralytics=={version}"])
    reqs = json.loads(_run([str(python), "-c", _MISSING_REQS]).stdout)
    extra = [spec for name, spec in reqs["missing"] if name.lower() not in _REUSED]
    if extra:
        _run(pip + extra)  # their own dependencies resolve against the system packages first
    return python, {"installed": extra, "mismatched": reqs["mismatched"]}


def _count(junit: Path) -> dict:
    """Return passed/failed/skipped counts and failing test ids from a pytest junit XML report."""
    counts, failures = {"passed": 0, "failed": 0, "skipped": 0}, []
    for case in ET.parse(junit).iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        key = {"failure": "failed", "error": "failed"}.get(outcome, outcome)
        counts[key] += 1
        if key == "failed":
            failures.append(f"{case.get('classname')}::{case.get('name')}")
    return {**counts, "failures": failures}


def run_tests(python: Path, tests: list[str], keyword: str | None, workdir: Path) -> dict:
    """Run ``tests`` with ``python`` offline, from the checkout, and count the outcomes.

    Args:
        python (Path): The environment's interpreter.
        tests (list[str]): Test files or node ids, relative to the checkout.
        keyword (str | None): pytest ``-k`` expression.
        workdir (Path): Scratch directory (settings, junit report).

    Returns:
        (dict): Counts, failing test ids, seconds, the exit code and the last output lines.
    """
    junit = workdir / "junit.xml"
    env = dict(os.environ, YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(workdir / "config"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("YOLO_ATTN_ALLOW_ANY_ULTRALYTICS", None)  # the range check must pass on its own
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests]
    cmd += ["-k", keyword] if keyword else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    result = _count(junit) if junit.exists() else {"passed": 0, "failed": 0, "skipped": 0, "failures": ["<no report>"]}
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    return {**result, "seconds": round(seconds, 1), "returncode": proc.returncode, "tail": tail}


def _ultralytics_version(python: Path) -> str:
    """Return the Ultralytics version the environment imports (guards against a shadowing install)."""
    code = "import importlib.metadata as m; print(m.version('ultralytics'))"
    return _run([str(python), "-c", code]).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """Build one environment per version, run the tests there, print the table and write the JSON.

    Args:
        argv (list[str] | None): Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        (int): 0 if every version passed, else 1.
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("versions", nargs="+", help="Ultralytics releases, e.g. 8.3.0 8.4.190")
    ap.add_argument("--tests", nargs="+", default=CORE_TESTS, help="test files or node ids (default: the core subset)")
    ap.add_argument("-k", dest="keyword", default=None, help=f"pytest -k expression (default with the core subset: "
                                                             f"'{CORE_DESELECT}')")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "version_matrix.json")
    ap.add_argument("--keep", action="store_true", help="keep the environments (their paths are printed)")
    args = ap.parse_args(argv)
    keyword = args.keyword if args.keyword is not None else (CORE_DESELECT if args.tests == CORE_TESTS else None)

    scratch = Path(tempfile.mkdtemp(prefix="yolo-attn-matrix-"))
    rows = []
    try:
        for version in args.versions:
            print(f"ultralytics {version}: creating environment ...", flush=True)
            python, deps = make_env(version, scratch)
            found = _ultralytics_version(python)
            if found != version:
                raise RuntimeError(f"environment for {version} imports ultralytics {found}")
            work = Path(tempfile.mkdtemp(dir=scratch))
            res = run_tests(python, args.tests, keyword, work)
            rows.append({"ultralytics": version, **deps, **res})
            print(f"  {res['passed']} passed, {res['failed']} failed, {res['skipped']} skipped in {res['seconds']} s"
                  + ("".join(f"\n  FAILED {f}" for f in res["failures"])), flush=True)
            if args.keep:
                print(f"  kept: {python}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    import torch  # only for the report: the environments reuse this one

    print("\n| ultralytics | passed | failed | skipped | seconds |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['ultralytics']} | {r['passed']} | {r['failed']} | {r['skipped']} | {r['seconds']} |")
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "tests": args.tests,
        "keyword": keyword,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0 if rows and all(r["failed"] == 0 and r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
