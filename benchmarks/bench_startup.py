"""What a 1-node run's start-up is made of, and how it compares with another checkout's.

    python benchmarks/bench_startup.py [--before PATH] [--repeat 7] [--python PYTHON]

Runs ``peers/wfe_driver.py`` (``wfe.run`` on a 1-node workflow, then its
output read) as whole processes, cold (a fresh store) and cached, this
checkout and, with ``--before``, the checkout at PATH (put first on
``PYTHONPATH``), alternated, median of ``--repeat``; then once each under
``python -X importtime`` and prints the cumulative import time of the
modules that weigh most. ``--python`` picks the interpreter (default: wfe's
own venv that bench_peers.py builds from this checkout, so this checkout is
installed as a user installs it; ``--before`` is then found first on the path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _gen import write  # noqa: E402
from bench_peers import measure, wfe_venv  # noqa: E402

DRIVER = HERE / "peers" / "wfe_driver.py"
SHOWN = 14  # modules listed per checkout


def _path_for(before: Path | None) -> None:
    """Put ``before`` (and its backends) first on the path of the children, or nothing."""
    if before is not None:
        os.environ["PYTHONPATH"] = f"{before}{os.pathsep}{before / 'backends'}"
    else:
        os.environ.pop("PYTHONPATH", None)


def one_run(python: str, workflow: Path, store: Path, before: Path | None) -> tuple[float, float]:
    """(wall s, CPU s) of one driver process."""
    _path_for(before)
    wall, cpu, _peak, code, out, err = measure([python, str(DRIVER), str(workflow), str(store)], workflow.parent)
    if code != 0 or json.loads(out)["status"] != "succeeded":
        raise SystemExit(f"the run failed ({before or 'this checkout'}): {err[-500:]}")
    return wall, cpu


def import_times(python: str, workflow: Path, store: Path, before: Path | None) -> tuple[float, list[tuple[int, str]]]:
    """Total import time (ms, the sum of every module's own) and the heaviest top-level entries (us, module)."""
    _path_for(before)
    done = subprocess.run([python, "-X", "importtime", str(DRIVER), str(workflow), str(store)],
                          cwd=workflow.parent, capture_output=True, text=True, check=True)
    total, entries = 0, []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        total += int(own)
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:
            entries.append((int(cumulative), name.strip()))
    return total / 1000, sorted(entries, reverse=True)[:SHOWN]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout of wfe to compare with")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--python", help="the interpreter (default: bench_peers.py's venv of this checkout)")
    args = parser.parse_args()
    if args.python is None:
        args.python = str(wfe_venv(HERE.parent, HERE / ".peer-venvs"))
    sides: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.before is not None:
        sides.insert(0, (f"before ({args.before})", args.before.resolve()))
    work = Path(tempfile.mkdtemp(prefix="wfe-startup-"))
    try:
        workflow = write(work, "chain", 1)
        samples: dict[str, dict[str, list[float]]] = {label: {} for label, _ in sides}
        for _ in range(args.repeat):
            for label, before in sides:
                store = work / "store"
                shutil.rmtree(store, ignore_errors=True)
                for state in ("cold", "cached"):
                    wall, cpu = one_run(args.python, workflow, store, before)
                    samples[label].setdefault(f"{state} wall", []).append(wall)
                    samples[label].setdefault(f"{state} cpu", []).append(cpu)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(f"start-up of a 1-node run (wfe.run, then its output read), {when}, "
              f"load {os.getloadavg()[0]:.1f}, median of {args.repeat}, alternated\n")
        print("| checkout | cold wall / CPU, s | cached wall / CPU, s | imports, ms (sum of every module's own) |")
        print("|---|---|---|---|")
        tops = {}
        for label, before in sides:
            med = {key: statistics.median(values) for key, values in samples[label].items()}
            shutil.rmtree(work / "store", ignore_errors=True)
            total, tops[label] = import_times(args.python, workflow, work / "store", before)
            print(f"| {label} | {med['cold wall']:.3f} / {med['cold cpu']:.3f} | {med['cached wall']:.3f} / "
                  f"{med['cached cpu']:.3f} | {total:.0f} |")
        for label, top in tops.items():
            print(f"\n`python -X importtime`, {label}: the heaviest imports of the top two levels, cumulative ms\n")
            print("| module | ms |\n|---|---|")
            print("\n".join(f"| `{name}` | {cumulative / 1000:.1f} |" for cumulative, name in top))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
