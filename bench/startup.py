"""Start-up latency of the ``dlrecipe`` command.

Part 1: ``dlrecipe --help`` and ``dlrecipe COMMAND --help`` for every command, each a real subprocess,
timed against ``python -c pass`` (bare interpreter start) measured in the same run, interleaved round by
round so that both see the same machine noise. Goal: under 0.3 s each. It also checks, in a separate
process per command, that ``--help`` does not import TensorFlow or Keras.

Part 2: ``dlrecipe validate`` on a recipe with structural errors (an unknown top-level key, a negative
``train.epochs``) and a Keras-level error (the unknown layer type ``Dnse``). It times, from just before
the process is started, the arrival of the first ``error:`` line on stderr (goal: under 1 s), of the
Keras-level error, and the process exit, and checks that all three errors come in the same run, that the
exit code is 2 and that the structural errors are printed before TensorFlow starts to import.

Times are reported, never asserted: the exit code is 1 only when a check fails (TensorFlow imported by
``--help``, a missing error, a wrong exit code, a traceback).

Usage (from the repository root):
    .venv/bin/python bench/startup.py            # 5 runs per --help case, 3 validate runs
    .venv/bin/python bench/startup.py -n 10 --validate-runs 5
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import find_dlrecipe

HELP_GOAL_S = 0.3
FIRST_ERROR_GOAL_S = 1.0
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "fashion_mnist_sample.npz"

# Prints, at exit, whether TensorFlow / Keras were imported while the CLI ran with the given argv.
MODULE_PROBE = """
import atexit, sys
sys.argv = {argv!r}
def _report():
    heavy = [m for m in ("tensorflow", "keras", "jax", "torch", "numpy", "pydantic", "yaml", "matplotlib")
             if m in sys.modules]
    sys.stderr.write("BENCH_MODULES " + " ".join(heavy) + "\\n")
atexit.register(_report)
from dlrecipe.cli.main import app
app()
"""

# Runs `dlrecipe validate` with a marker written to the real stderr pipe (order preserved) when the first
# of TensorFlow / Keras / JAX starts to import. A saved copy of fd 2 is used because dlrecipe points fd 2 at
# /dev/null while it imports Keras.
IMPORT_MARKER = """
import importlib.abc, os, sys
_fd = os.dup(2)
class _Marker(importlib.abc.MetaPathFinder):
    seen = False
    def find_spec(self, name, path=None, target=None):
        if not self.seen and name in ("tensorflow", "keras", "jax"):
            type(self).seen = True
            os.write(_fd, ("BENCH_IMPORT_START " + name + "\\n").encode())
        return None
sys.meta_path.insert(0, _Marker())
sys.argv = {argv!r}
from dlrecipe.cli.main import app
app()
"""

BAD_RECIPE = """\
# Written by bench/startup.py: two structural errors and one Keras-level error.
name: bench_bad
seed: 42
colour: blue                 # structural: unknown top-level key
data:
  source: npz
  path: {sample}
  validation_split: 0.1
  normalize: rescale
model:
  layers:
    - {{type: Conv2D, filters: 8, kernel_size: 3, activation: relu}}
    - {{type: Flatten}}
    - {{type: Dnse, units: 10, activation: softmax}}   # Keras-level: unknown layer class
train:
  epochs: -3                 # structural: must be positive
  batch_size: 64
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  optimizer: adam
"""

# (label, kind, pattern that the error line must match)
EXPECTED_ERRORS = [
    ("unknown key 'colour'", "structural", re.compile(r"^error: colour\b")),
    ("negative train.epochs", "structural", re.compile(r"^error: train\.epochs\b")),
    ("unknown layer 'Dnse'", "keras", re.compile(r"^error: model\.layers\[2\]\.type\b.*Dnse")),
]


def command_names() -> list[str]:
    """The CLI's commands, as Typer names them (importing dlrecipe.cli.main is cheap: no TensorFlow)."""
    from dlrecipe.cli.main import app
    names = []
    for cmd in app.registered_commands:
        if cmd.hidden:
            continue
        names.append(cmd.name or cmd.callback.__name__.replace("_", "-"))
    return names


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return time.perf_counter() - t0, proc


def fmt(s: float) -> str:
    return f"{s:7.3f}"


def part_help(n: int, dlrecipe: str, env: dict[str, str]) -> bool:
    py = sys.executable
    cases: list[tuple[str, list[str], bool]] = [  # (label, argv, is a dlrecipe case)
        ("python -c pass", [py, "-c", "pass"], False),
        ("python -c 'import typer'", [py, "-c", "import typer"], False),
        ("dlrecipe --help", [dlrecipe, "--help"], True),
    ]
    commands = command_names()
    cases += [(f"dlrecipe {c} --help", [dlrecipe, c, "--help"], True) for c in commands]
    ok = True
    print(f"== Part 1: --help start-up ({n} runs each, interleaved; 1 warm-up run each, not counted)")
    print(f"   interpreter: {py}\n   dlrecipe:    {dlrecipe}\n   commands:    {', '.join(commands)}")
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for round_ in range(n + 1):
        for label, argv, _ in cases:
            dt, proc = timed_run(argv, env)
            if proc.returncode != 0:
                print(f"   FAIL: {label} exited {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-2000:]}")
                ok = False
            if round_ > 0:
                times[label].append(dt)
    base = statistics.median(times["python -c pass"])
    print()
    print(f"   {'case':<34} {'median s':>8} {'min s':>7} {'- base':>7} {'x base':>7}  goal < {HELP_GOAL_S} s")
    for label, _, is_cli in cases:
        med, low = statistics.median(times[label]), min(times[label])
        verdict = ("ok" if med < HELP_GOAL_S else "OVER") if is_cli else "(reference)"
        print(f"   {label:<34} {fmt(med)} {fmt(low)} {fmt(med - base)} {med / base:7.1f}  {verdict}")
    cli = [statistics.median(times[label]) for label, _, is_cli in cases if is_cli]
    print(f"\n   slowest dlrecipe --help: {max(cli):.3f} s = {max(cli) / base:.1f}x python -c pass "
          f"({base:.3f} s); {sum(m < HELP_GOAL_S for m in cli)}/{len(cli)} under {HELP_GOAL_S} s")

    print("\n   Modules loaded by --help (each in its own process):")
    for argv in [["dlrecipe", "--help"], *[["dlrecipe", c, "--help"] for c in commands]]:
        proc = subprocess.run([py, "-c", MODULE_PROBE.format(argv=argv)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
        err = proc.stderr.decode(errors="replace")
        m = re.search(r"^BENCH_MODULES ?(.*)$", err, re.M)
        if m is None:
            print(f"   FAIL: {' '.join(argv)}: no module report (exit {proc.returncode}):\n{err[-2000:]}")
            ok = False
            continue
        heavy = m.group(1).split()
        bad = [x for x in heavy if x in ("tensorflow", "keras", "jax", "torch")]
        status = "TF_LOADED" if "tensorflow" in heavy else "TF_NOT_LOADED"
        if bad:
            ok = False
        print(f"   {' '.join(argv[1:]):<20} {status:<14} {'FAIL ' if bad else ''}"
              f"heavy modules: {', '.join(heavy) or 'none'}")

    slowest = max((label for label, _, is_cli in cases if is_cli and label != "dlrecipe --help"),
                  key=lambda label: statistics.median(times[label]), default=None)
    for label in ["dlrecipe --help", slowest]:
        if label is None:
            continue
        top = import_profile(py, label.split(), env)
        if top:
            print(f"\n   Largest top-level imports of `{label}` (python -X importtime, cumulative, one run):")
            for us, name in top:
                print(f"   {us / 1e6:7.3f} s  {name}")
    return ok


def import_profile(py: str, argv: list[str], env: dict[str, str], k: int = 6) -> list[tuple[int, str]]:
    code = f"import sys; sys.argv = {argv!r}\nfrom dlrecipe.cli.main import app\napp()"
    proc = subprocess.run([py, "-X", "importtime", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env)
    rows = []
    for line in proc.stderr.decode(errors="replace").splitlines():
        m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if m and len(m.group(2)) == 1:  # top-level imports only (one space of indentation)
            rows.append((int(m.group(1)), m.group(3)))
    return sorted(rows, reverse=True)[:k]


def timed_validate(argv: list[str], env: dict[str, str]) -> dict:
    """Start ``argv``; time stamp each stderr line as it arrives (seconds since just before the start)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    lines: list[tuple[float, str]] = []
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        lines.append((time.perf_counter() - t0, raw.decode(errors="replace").rstrip("\n")))
    rc = proc.wait()
    return {"lines": lines, "rc": rc, "exit": time.perf_counter() - t0}


def part_validate(runs: int, dlrecipe: str, env: dict[str, str], folder: Path) -> bool:
    recipe = folder / "bad.yaml"
    recipe.write_text(BAD_RECIPE.format(sample=SAMPLE))
    print(f"\n== Part 2: `dlrecipe validate` on a recipe with 2 structural + 1 Keras-level error "
          f"({runs} runs, after 1 warm-up run)\n   recipe: {recipe}")
    ok = True
    results = []
    for i in range(runs + 1):
        r = timed_validate([dlrecipe, "validate", str(recipe)], env)
        if i > 0:
            results.append(r)
    first = results[-1]
    print("\n   stderr of the last run, with arrival times:")
    for t, line in first["lines"]:
        print(f"   {t:7.3f} s | {line}")
    print(f"   {first['exit']:7.3f} s | (exit code {first['rc']})")

    rows: dict[str, list[float]] = {"first error line": [], "last structural error": [],
                                    "Keras-level error (Dnse)": [], "process exit (full list)": []}
    for n, r in enumerate(results, 1):
        errs = [(t, line) for t, line in r["lines"] if line.startswith("error:")]
        found = {}
        for label, kind, pattern in EXPECTED_ERRORS:
            hit = next(((t, line) for t, line in errs if pattern.search(line)), None)
            if hit is None:
                print(f"   FAIL (run {n}): no error line for {label} ({kind})")
                ok = False
            else:
                found[label] = (kind, hit[0])
        if r["rc"] != 2:
            print(f"   FAIL (run {n}): exit code {r['rc']}, expected 2")
            ok = False
        if any("Traceback" in line for _, line in r["lines"]):
            print(f"   FAIL (run {n}): a traceback was printed")
            ok = False
        if errs:
            rows["first error line"].append(errs[0][0])
        structural = [t for kind, t in found.values() if kind == "structural"]
        keras_ = [t for kind, t in found.values() if kind == "keras"]
        if structural:
            rows["last structural error"].append(max(structural))
        if keras_:
            rows["Keras-level error (Dnse)"].append(keras_[0])
        rows["process exit (full list)"].append(r["exit"])

    print(f"\n   {'event (s since process start)':<32} {'median s':>8} {'min s':>7} {'max s':>7}")
    for label, ts in rows.items():
        if ts:
            print(f"   {label:<32} {fmt(statistics.median(ts))} {fmt(min(ts))} {fmt(max(ts))}")
        else:
            print(f"   {label:<32}   (never seen)")

    # Order check: structural errors must come before TensorFlow/Keras starts to import.
    probe = timed_validate([sys.executable, "-c", IMPORT_MARKER.format(argv=["dlrecipe", "validate", str(recipe)])],
                           env)
    marker = next(((i, t, line) for i, (t, line) in enumerate(probe["lines"])
                   if line.startswith("BENCH_IMPORT_START")), None)
    structural_idx = [i for i, (_, line) in enumerate(probe["lines"])
                      if any(p.search(line) for _, kind, p in EXPECTED_ERRORS if kind == "structural")]
    if marker is None:
        print("   FAIL: TensorFlow/Keras was never imported by validate (the Keras-level check cannot have run)")
        ok = False
        before = False
    else:
        before = bool(structural_idx) and max(structural_idx) < marker[0]
        print(f"\n   backend import ({marker[2].split()[-1]}) starts at {marker[1]:.3f} s; structural errors "
              f"printed {'BEFORE' if before else 'NOT before'} it")
        ok &= before

    med_first = statistics.median(rows["first error line"]) if rows["first error line"] else float("nan")
    med_exit = statistics.median(rows["process exit (full list)"])
    base = statistics.median([timed_run([sys.executable, "-c", "pass"], env)[0] for _ in range(5)])
    print(f"\n   first error after {med_first:.3f} s (goal < {FIRST_ERROR_GOAL_S} s: "
          f"{'ok' if med_first < FIRST_ERROR_GOAL_S else 'OVER'}; {med_first / base:.1f}x python -c pass = "
          f"{base:.3f} s); full list and exit after {med_exit:.3f} s")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=5, help="timed runs per --help case (default 5)")
    ap.add_argument("--validate-runs", type=int, default=3, help="timed runs of the validate case (default 3)")
    ap.add_argument("--dlrecipe", default=None, help="the dlrecipe executable (default: next to this Python)")
    ap.add_argument("--skip-help", action="store_true", help="only part 2")
    ap.add_argument("--skip-validate", action="store_true", help="only part 1")
    args = ap.parse_args()
    dlrecipe = args.dlrecipe or find_dlrecipe()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    print(f"bench/startup.py  {time.strftime('%Y-%m-%d %H:%M:%S')}  cpus={os.cpu_count()}  "
          f"load={os.getloadavg()[0]:.2f}")
    ok = True
    if not args.skip_help:
        ok &= part_help(args.runs, dlrecipe, env)
    if not args.skip_validate:
        with tempfile.TemporaryDirectory(prefix="dlrecipe-bench-") as tmp:
            ok &= part_validate(args.validate_runs, dlrecipe, env, Path(tmp))
    print(f"\nchecks: {'all passed' if ok else 'FAILED (see FAIL lines)'} (times are reported, not asserted); "
          f"load at the end {os.getloadavg()[0]:.2f}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
