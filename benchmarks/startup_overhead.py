"""Benchmark: interpreter start-up time added by the kit's start-up hook (``yolo_attn_autoload.pth``).

Three measurements, each over many fresh interpreters in interleaved rounds (machine noise hits every
configuration alike), compared by their medians:

- clean venvs (no system site-packages): ``python -c pass`` in one bare venv and in one holding just the two
  installed hook files (the .pth and ``yolo_attn_autoload.py``), wall and CPU time of the whole process. The
  difference is the whole cost of the hook against an honest baseline, as a ratio to ``python -c pass``.
- in-process: ``python -S`` then ``site.addsitedir(DIR)`` timed, DIR holding the hook files vs an empty DIR. This is
  exactly the start-up work the hook adds (read the .pth, import the module, install the finder), without the
  noise of process creation.
- this environment: ``python -c pass`` with the hook on vs ``YOLO_ATTN_AUTOLOAD=0`` (module loaded, no finder), and
  the module's import time from ``python -X importtime``.

Needs the kit installed.

    python benchmarks/startup_overhead.py [--repeats 60] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource  # Unix: CPU time of child processes
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _results import write_json  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]

PTH = "yolo_attn_autoload.pth"
MODULE = "yolo_attn_autoload"


def _hook_files() -> list[Path]:
    """Return the installed .pth file and hook module, or exit with the fix if the kit is not installed."""
    pth = next((Path(d, PTH) for d in site.getsitepackages() if Path(d, PTH).is_file()), None)
    spec = importlib.util.find_spec(MODULE)
    if pth is None or spec is None or not spec.origin:
        raise SystemExit(f"{PTH} is not installed for {sys.executable}: run `pip install -e .` first")
    return [pth, Path(spec.origin)]


def _venv(root: Path, files: list[Path]) -> str:
    """Create a venv without pip or system site-packages, copy ``files`` into its site-packages, return its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    exe = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(exe), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    for f in files:
        shutil.copy2(f, purelib)
    return str(exe)


def _start_time(exe: str, env: dict) -> tuple[float, float]:
    """Return (wall, CPU) seconds of one ``exe -c pass``, process creation to exit (CPU: user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([exe, "-c", "pass"], env=env, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _addsitedir_time(exe: str, site_dir: Path, env: dict) -> float:
    """Seconds ``site.addsitedir(site_dir)`` takes in a fresh ``exe -S`` (no site-packages processed before)."""
    code = "import site, time; t = time.perf_counter(); site.addsitedir(%r); print(time.perf_counter() - t)"
    out = subprocess.run([exe, "-S", "-c", code % str(site_dir)], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout)


def _import_time_us(env: dict, repeats: int = 15) -> float:
    """Median cumulative import time of the hook module at start-up, in microseconds, from ``-X importtime``."""
    times = []
    for _ in range(repeats):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=env, capture_output=True,
                             text=True, check=True).stderr
        line = next((ln for ln in err.splitlines() if ln.split("|")[-1].strip() == MODULE), None)
        if line is None:
            raise SystemExit(f"{MODULE} was not imported at start-up: is YOLO_ATTN_AUTOLOAD=0 or -S in effect?")
        times.append(int(line.split("|")[1]))
    return statistics.median(times)


def _ms(xs: list[float]) -> dict:
    """Median and interquartile range, in milliseconds."""
    q = statistics.quantiles(xs, n=4)
    return {"median_ms": statistics.median(xs) * 1e3, "p25_ms": q[0] * 1e3, "p75_ms": q[2] * 1e3}


def _pair(on: list[float], off: list[float]) -> dict:
    """Compare interleaved series: added ms and ratio of the medians, and the spread of per-round differences."""
    diffs = [(a - b) * 1e3 for a, b in zip(on, off)]
    q = statistics.quantiles(diffs, n=4)
    return {"with": _ms(on), "without": _ms(off), "added_ms": (statistics.median(on) - statistics.median(off)) * 1e3,
            "ratio": statistics.median(on) / statistics.median(off), "round_diff_ms_median": statistics.median(diffs),
            "round_diff_ms_p25_p75": [q[0], q[2]]}


def _rounds(configs: dict, measure, repeats: int) -> dict[str, list]:
    """Measure every configuration once per round, alternating the order, after one warm-up round."""
    out: dict[str, list] = {k: [] for k in configs}
    for args in configs.values():
        measure(*args)  # warm-up: file cache, .pyc files
    for i in range(repeats):
        for name in list(configs) if i % 2 == 0 else list(reversed(configs)):
            out[name].append(measure(*configs[name]))
    return out


def _row(label: str, r: dict) -> str:
    lo, hi = r["round_diff_ms_p25_p75"]
    return (f"{label:<44}{r['with']['median_ms']:>9.2f}{r['without']['median_ms']:>9.2f}{r['added_ms']:>9.3f}"
            f"{r['ratio']:>8.4f}  {lo:+.2f}..{hi:+.2f}")


def main() -> dict:
    """Run the benchmark, print a table and write JSON.

    Returns:
        (dict): The results.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=60, help="rounds; each round runs every configuration once")
    ap.add_argument("--out", default="benchmarks/results/startup_overhead.json")
    args = ap.parse_args()

    files = _hook_files()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "YOLO_ATTN_"))}
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        with_hook, bare = _venv(Path(tmp, "with"), files), _venv(Path(tmp, "bare"), [])
        hook_dir, empty_dir = Path(tmp, "hook-site"), Path(tmp, "empty-site")
        empty_dir.mkdir()
        hook_dir.mkdir()
        for f in files:
            shutil.copy2(f, hook_dir)
        venv = _rounds({"with": (with_hook, env), "bare": (bare, env)}, _start_time, args.repeats)
        inproc = _rounds({"with": (bare, hook_dir, env), "bare": (bare, empty_dir, env)}, _addsitedir_time,
                         args.repeats)
        here = _rounds({"on": (sys.executable, env), "off": (sys.executable, dict(env, YOLO_ATTN_AUTOLOAD="0"))},
                       _start_time, args.repeats)
    wall = lambda xs: [x[0] for x in xs]  # noqa: E731
    cpu = lambda xs: [x[1] for x in xs]  # noqa: E731
    res = {
        "clean_venv_wall": _pair(wall(venv["with"]), wall(venv["bare"])),
        "clean_venv_cpu": _pair(cpu(venv["with"]), cpu(venv["bare"])),
        "addsitedir_in_process": _pair(inproc["with"], inproc["bare"]),
        "this_env_wall_on_vs_off": _pair(wall(here["on"]), wall(here["off"])),
        "module_import_us_median": _import_time_us(env),
        "repeats": args.repeats,
        "hook_files": [str(f) for f in files],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"{'medians over ' + str(args.repeats) + ' rounds':<44}{'with':>9}{'without':>9}{'added':>9}{'ratio':>8}"
          "  round diff p25..p75 (ms)")
    print(_row("python -c pass, clean venv, wall ms", res["clean_venv_wall"]))
    print(_row("python -c pass, clean venv, CPU ms", res["clean_venv_cpu"]))
    print(_row("site.addsitedir(hook files vs empty) ms", res["addsitedir_in_process"]))
    print(_row("python -c pass, this env, on vs =0, wall ms", res["this_env_wall_on_vs_off"]))
    print(f"{MODULE} import at start-up (-X importtime, median): {res['module_import_us_median']:.0f} us; goal: < 5 ms")
    write_json(res, args.out)
    return res


if __name__ == "__main__":
    main()
