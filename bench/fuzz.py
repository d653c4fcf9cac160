"""Fuzz `dlrecipe validate` with many mutated shipped recipes: exit codes, distinct error kinds, tracebacks.

    .venv/bin/python bench/fuzz.py              # 500 examples, seed 0 (a few minutes)
    .venv/bin/python bench/fuzz.py -n 2000 --seed 7

Runs validate in-process (TensorFlow imported once) through the real CLI. Exit code 1 when any example
breaks the rule of tests/recipe/test_fuzz.py (exit 0 or 2, every message naming a recipe path, nothing written).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "recipe"))
from recipe_fuzz import RECIPES, check_outcome, error_kind, load, mutate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from typer.testing import CliRunner

    from dlrecipe.cli.main import app
    runner, rnd = CliRunner(), random.Random(args.seed)
    codes, kinds, bad = collections.Counter(), collections.Counter(), []
    start = time.perf_counter()
    for i in range(args.n):
        recipe = rnd.choice(RECIPES)
        with tempfile.TemporaryDirectory() as tmp:
            doc = mutate(load(recipe), random.Random(rnd.getrandbits(32)), rnd.randint(1, 3))
            path = Path(tmp) / "mutated.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
            try:
                result = runner.invoke(app, ["validate", str(path)], catch_exceptions=True)
                code, stderr = result.exit_code, result.stderr
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    code, stderr = 1, f"Traceback: {type(result.exception).__name__}: {result.exception}"
            except Exception as e:  # noqa: BLE001  (counted, not raised)
                code, stderr = 1, f"Traceback: {type(e).__name__}: {e}"
            wrong = check_outcome(code, stderr)
            if [p.name for p in Path(tmp).iterdir()] != ["mutated.yaml"]:
                wrong.append("a file was written")
        codes[code] += 1
        kinds.update(error_kind(line) for line in stderr.splitlines() if line.startswith("error: "))
        if wrong:
            bad.append((recipe.name, wrong, stderr[-300:]))
    seconds = time.perf_counter() - start
    print(f"bench/fuzz.py  examples={args.n}  seed={args.seed}  {seconds:.0f} s ({seconds / args.n:.2f} s each)")
    print(f"   exit codes: {dict(sorted(codes.items()))}")
    print(f"   distinct error kinds: {len(kinds)}; most frequent:")
    for kind, n in kinds.most_common(12):
        print(f"     {n:5d}  {kind}")
    print(f"   examples breaking the rule (tracebacks, pathless messages, files written): {len(bad)}")
    for name, wrong, tail in bad[:10]:
        print(f"     {name}: {wrong}\n       {tail!r}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
