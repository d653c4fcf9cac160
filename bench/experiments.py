"""The lectures' experiments (experiments/<topic>/): train every variant, compare, check the prediction.

Each experiment folder holds a base recipe, one recipe per variant, a README and predict.yaml, the prediction in
a form this script checks:

    prediction: Dropout shrinks the gap between training and validation accuracy.
    kind: train                  # train (default) | ensemble | tune
    variants: [base.yaml, p02.yaml, p05.yaml]
    checks:
      - metric: gap_accuracy     # any metric of compare.json (test_accuracy, best_val_loss, epochs, ...),
        ascending: [[p05], [p02], [base]]   # or gap_accuracy: the last epoch's accuracy - val_accuracy

``ascending`` lists tiers of variants (recipe stems), lowest value first: the prediction holds when every
variant's mean is below the mean of every variant of a later tier (no order within a tier); "within noise" is
added when two of those means differ by less than the larger of their standard deviations. Each variant is
trained as a user would, ``dlrecipe train RECIPE --seeds N --evaluate`` (``kind: ensemble``: ``dlrecipe train
RECIPE --evaluate``, an ensemble cannot take --seeds; ``kind: tune``: ``dlrecipe tune RECIPE --set seed=S`` per
seed), then ``dlrecipe compare ... --json`` gives mean ± std per variant; nothing is aggregated here
except what compare cannot read (an ensemble's members, a search's best trial, the train-val gap), with
dlrecipe's own ``runs.summarize``. These are measurements, not assertions: a prediction that does not hold is
reported, and the exit code is 1 only when a command fails.

    .venv/bin/python bench/experiments.py                       # all 10, --seeds 3 (~30 min on 2 cores)
    .venv/bin/python bench/experiments.py --only dropout,search --out /tmp/exp
    .venv/bin/python bench/experiments.py --only dropout --seeds 1 --epochs 1    # a smoke test
    .venv/bin/python bench/experiments.py --update-readmes      # also writes each README's measured table
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dlrecipe import runs  # noqa: E402  (reads files only: no TensorFlow)

EXPERIMENTS = ROOT / "experiments"
ORDER = ["initialization", "dropout", "batch_norm", "optimizers", "schedules", "augmentation", "regularization",
         "early_stopping", "ensemble", "search"]
GAP = "gap_accuracy"
DIVERGED = "loss became NaN"          # train's message when it stops on a NaN loss (exit 1)
DIVERGED_SEEDS = "diverged_seeds"
BEGIN, END = "<!-- measured: bench/experiments.py -->", "<!-- /measured -->"


def load_spec(topic: str | Path) -> dict[str, Any]:
    """An experiment's predict.yaml."""
    folder = Path(topic) if Path(topic).is_dir() else EXPERIMENTS / str(topic)
    return yaml.safe_load((folder / "predict.yaml").read_text())


def stem(name: str) -> str:
    return Path(name).stem


# --- the check ------------------------------------------------------------------------------------------

def check_order(metrics: dict[str, dict[str, Any]], check: dict[str, Any]) -> dict[str, Any]:
    """Whether the measured means follow ``check["ascending"]`` (tiers of labels, lowest first).

    ``metrics`` maps each label to its metrics as compare.json has them (``{"test_accuracy": {"mean", "std",
    "n"}}``). Returns ``{"metric", "matched": True | False | None (a mean missing), "measured": labels sorted
    by their mean, "values": {label: {"mean", "std", "n"}}}``.
    """
    name = check["metric"]
    tiers = [[stem(v) for v in tier] for tier in check["ascending"]]
    values = {label: metrics.get(label, {}).get(name) for tier in tiers for label in tier}
    missing = [label for label, v in values.items() if not v or v.get("mean") is None]
    measured = sorted((label for label in values if label not in missing), key=lambda k: values[k]["mean"])
    if missing:
        return {"metric": name, "matched": None, "measured": measured, "values": values, "missing": missing}
    pairs = [(a, b) for i, low in enumerate(tiers) for high in tiers[i + 1:] for a in low for b in high]
    matched = all(values[a]["mean"] < values[b]["mean"] for a, b in pairs)
    # clear: every predicted pair's means differ by more than the larger of their two stds
    clear = all(abs(values[b]["mean"] - values[a]["mean"]) > max(values[a]["std"] or 0, values[b]["std"] or 0)
                for a, b in pairs)
    return {"metric": name, "matched": matched, "clear": clear, "measured": measured, "values": values}


def checked(metrics: dict[str, dict[str, Any]], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check of a predict.yaml on the measured metrics, each with its ``predicted`` tiers."""
    return [{**check_order(metrics, c), "predicted": [[stem(v) for v in tier] for tier in c["ascending"]]}
            for c in spec["checks"]]


def metrics_from_compare(compare_json: dict[str, Any], labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """compare.json's metrics by variant: ``labels`` maps a row's group (or single run) folder to its label.

    Adds ``gap_accuracy`` (the last epoch's training accuracy minus its val_accuracy, per run, then mean ± std)
    where the runs' history.csv can be read.
    """
    found = {}
    for row in compare_json["rows"]:
        key = row.get("group") or row["runs"][0]
        label = labels.get(str(Path(key).resolve()), labels.get(key, row["label"]))
        metrics = dict(row["metrics"])
        gaps = []
        for run in row["runs"]:
            history = runs.history_columns(Path(run) / runs.HISTORY) if Path(run).is_dir() else None
            if history and history.get("accuracy") and history.get("val_accuracy"):
                gaps.append(history["accuracy"][-1] - history["val_accuracy"][-1])
        if gaps:
            metrics[GAP] = runs.summarize(gaps)
        found[label] = metrics
    return found


# --- running --------------------------------------------------------------------------------------------

def sh(cmd: list[str], log) -> str:
    print("$ " + " ".join(cmd) + f"   (load {os.getloadavg()[0]:.2f})", file=log, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    log.write(proc.stdout[-4000:] + proc.stderr[-4000:] + "\n")
    log.flush()
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def only_child(folder: Path) -> Path:
    """The one ``<name>/<timestamp>`` folder that a train wrote under ``folder`` (its own --out)."""
    found = sorted(p for p in folder.glob("*/*") if p.is_dir())
    if len(found) != 1:
        raise RuntimeError(f"expected one run or group in {folder}, found {found}")
    return found[0]


def run_experiment(topic: str, args, dlrecipe: str, log) -> dict[str, Any]:
    spec = load_spec(topic)
    kind = spec.get("kind", "train")
    out = args.out / topic
    sets = [] if args.epochs is None else ["--set", f"train.epochs={args.epochs}"]
    metrics: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    if kind == "train":
        labels, diverged = {}, {}
        for variant in spec["variants"]:
            folder = out / stem(variant)
            try:
                sh([dlrecipe, "train", f"experiments/{topic}/{variant}", "--seeds", str(args.seeds), "--evaluate",
                    "--out", str(folder), "-q", *sets], log)
            except RuntimeError as e:
                if DIVERGED not in str(e):
                    raise
                # a measurement, not a failure: train --seeds stops at the NaN (exit 1) before --evaluate;
                # evaluate the seeds that finished, and count the others as diverged
                diverged[stem(variant)] = evaluate_finished(only_child(folder), args.seeds, dlrecipe, log)
            labels[str(only_child(folder).resolve())] = stem(variant)
        shown = sh([dlrecipe, "compare", *labels, "--json", "--out", str(out / "compare")], log)
        metrics = metrics_from_compare(json.loads(shown), labels)
        for label in metrics:
            metrics[label][DIVERGED_SEEDS] = {"mean": diverged.get(label, 0), "std": None, "n": args.seeds}
    elif kind == "ensemble":
        for variant in spec["variants"]:
            folder = out / stem(variant)
            sh([dlrecipe, "train", f"experiments/{topic}/{variant}", "--evaluate", "--out", str(folder), "-q",
                *sets], log)
            test = runs.read_json(only_child(folder) / runs.METRICS)
            metrics[stem(variant)] = {"test_accuracy": runs.summarize([test["accuracy"]])}
            if test.get("members"):
                metrics["members"] = {"test_accuracy": runs.summarize([m["accuracy"] for m in test["members"]])}
    elif kind == "tune":
        # 100 apart: KerasTuner's random oracle draws each value with a seed counting up from the recipe's
        # (two per trial here), so nearby seeds share most of their draws (42 and 44 shared 8 of 9 rates)
        seeds = [42 + 100 * i for i in range(args.seeds)]
        for variant in spec["variants"]:
            best = []
            for seed in seeds:
                folder = out / stem(variant) / f"seed-{seed}"
                trials = [] if args.max_trials is None else ["--max-trials", str(args.max_trials)]
                sh([dlrecipe, "tune", f"experiments/{topic}/{variant}", "--set", f"seed={seed}", "--out",
                    str(folder), "-q", *trials, *sets], log)
                best.append(best_trial(folder))
            metrics[stem(variant)] = {"best_val_accuracy": runs.summarize(best)}
    checks = checked(metrics, spec)
    return {"topic": topic, "prediction": spec["prediction"], "metrics": metrics, "checks": checks,
            "seconds": time.perf_counter() - started}


def evaluate_finished(group: Path, seeds: int, dlrecipe: str, log) -> int:
    """Evaluate the seeds of a group that finished; the number of seeds that did not (a NaN loss, not trained)."""
    finished = [run for run in runs.group_runs(group) if (run / runs.MODEL).is_file()]
    for run in finished:
        if not (run / runs.METRICS).is_file():
            sh([dlrecipe, "evaluate", str(run)], log)
    return seeds - len(finished)


def best_trial(folder: Path) -> float:
    """The best val_accuracy of a search's completed trials (its trials.csv)."""
    (table,) = list(folder.glob("*/tune/trials.csv"))
    with table.open() as f:
        rows = list(csv.DictReader(f))
    column = next(c for c in rows[0] if c in ("val_accuracy", "objective", "score"))
    return max(float(r[column]) for r in rows if r.get(column) not in (None, ""))


# --- output ---------------------------------------------------------------------------------------------

def fmt(v: dict[str, Any] | None, digits: int = 4) -> str:
    if not v or v.get("mean") is None:
        return "—"
    std = "" if v.get("std") is None else f" ± {v['std']:.{digits}f}"
    return f"{v['mean']:.{digits}f}{std} (n={v['n']})"


def verdict(check: dict[str, Any]) -> str:
    """matched / NOT matched, "within noise" where a predicted pair's means differ by less than a std."""
    said = {True: "matched", False: "NOT matched", None: "not measured"}[check["matched"]]
    return said + (" (within noise)" if check["matched"] is not None and not check.get("clear", True) else "")


def markdown(result: dict[str, Any]) -> str:
    """The measured table of one experiment, as its README shows it."""
    names = list(dict.fromkeys(c["metric"] for c in result["checks"]))
    extra = [m for m in ("test_accuracy", "epochs", DIVERGED_SEEDS) if m not in names and any(
        m in v for v in result["metrics"].values())]
    cols = names + extra
    lines = ["| variant | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
    for label, values in result["metrics"].items():
        lines.append(f"| {label} | " + " | ".join(fmt(values.get(c), 1 if c == "epochs" else 4) if c != DIVERGED_SEEDS
                                                    else f"{values[c]['mean']} of {values[c]['n']}" for c in cols) + " |")
    lines.append("")
    for c in result["checks"]:
        tiers = " < ".join("{" + ", ".join(t) + "}" for t in c["predicted"]) if "predicted" in c else ""
        lines.append(f"- `{c['metric']}` predicted {tiers}; measured, lowest first: "
                     f"{', '.join(c['measured'])}: **{verdict(c)}**.")
    lines.append(f"- Wall time: {result['seconds']:.0f} s (`--seeds {result['seeds']}`, on a shared 2-core "
                 "machine).")
    return "\n".join(lines)


def summary(results: list[dict[str, Any]]) -> str:
    """One line per check of every experiment: predicted and measured order (with the means), result, wall time."""
    lines = ["| experiment | metric | predicted (lowest first) | measured: mean ± std | result | wall |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for c in r["checks"]:
            predicted = " < ".join("{" + ", ".join(t) + "}" for t in c["predicted"])
            digits = 1 if c["metric"] == "epochs" else 4
            measured = ", ".join(f"{k} {fmt(c['values'][k], digits).split(' (')[0]}" for k in c["measured"])
            lines.append(f"| [{r['topic']}]({r['topic']}/README.md) | `{c['metric']}` | {predicted} | {measured} | "
                         f"{verdict(c)} | {r['seconds']:.0f} s |")
    total = sum(r["seconds"] for r in results)
    lines.append(f"\nTotal wall time {total / 60:.1f} min (`--seeds {results[0]['seeds']}`, on a shared 2-core machine)."
                 if results else "")
    return "\n".join(lines)


def update_readme(topic: str, text: str) -> None:
    """Replace the measured block of experiments/<topic>/README.md (``""``: experiments/README.md)."""
    readme = EXPERIMENTS / topic / "README.md"
    body = readme.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in body:
        body = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    readme.write_text(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated topics (default: all): " + ",".join(ORDER))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="override train.epochs (a smoke test)")
    parser.add_argument("--max-trials", type=int, help="override the searches' trials (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/dlrecipe-experiments"))
    parser.add_argument("--update-readmes", action="store_true", help="write the measured tables into READMEs")
    parser.add_argument("--from-results", type=Path, help="only print (and --update-readmes) a results.json")
    args = parser.parse_args(argv)
    if args.from_results:
        results = json.loads(args.from_results.read_text())
        for r in results:  # checked again: predict.yaml may have been corrected since
            r["checks"] = checked(r["metrics"], load_spec(r["topic"]))
            print(markdown(r))
            if args.update_readmes:
                update_readme(r["topic"], markdown(r))
        print(summary(results))
        if args.update_readmes and results:
            update_readme("", summary(results))
        return 0
    topics = args.only.split(",") if args.only else ORDER
    sys.path.insert(0, str(Path(__file__).parent))
    from common import find_dlrecipe
    dlrecipe = find_dlrecipe()
    args.out.mkdir(parents=True, exist_ok=True)
    results, failed = [], []
    with (args.out / "commands.log").open("a") as log:
        for topic in topics:
            print(f"== {topic}: {load_spec(topic)['prediction']}", flush=True)
            try:
                result = run_experiment(topic, args, dlrecipe, log)
            except RuntimeError as e:
                print(f"FAILED: {e}", flush=True)
                failed.append(topic)
                continue
            result["seeds"] = args.seeds
            results.append(result)
            print(markdown(result), flush=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
            if args.update_readmes:
                update_readme(topic, markdown(result))
    print("\n" + summary(results))
    if args.update_readmes and results:
        update_readme("", summary(results))
    print(f"results: {args.out / 'results.json'}; commands and their output: {args.out / 'commands.log'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
