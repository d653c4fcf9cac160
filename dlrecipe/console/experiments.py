"""What ``train --seeds N``, ``compare`` and ``report`` print (see docs/commands.md)."""

from __future__ import annotations

import json
from typing import Any

from dlrecipe.console import echo, err, rich_console


def mean_std(stat: dict[str, Any] | None, digits: int = 4) -> str:
    """``0.8123 ± 0.0040`` (``0.8123`` for one run; empty when there is no value)."""
    if not stat or stat.get("mean") is None:
        return ""
    mean, std = stat["mean"], stat.get("std")
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def cell(value: Any) -> str:
    """A recipe value in a table cell: numbers and strings as they are, ``—`` for none, anything else as JSON."""
    if value is None:
        return "—"
    if isinstance(value, tuple):  # a seed group's seeds
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (str, int)):
        return str(value)
    return json.dumps(value)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _seed_table(title: str, rows: list[dict[str, Any]], summary: dict[str, dict]) -> None:
    """One row per seed, then the mean ± std over the seeds that did not diverge (with their number, n)."""
    from rich.table import Table
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "diverged"))
    finished = [r for r in rows if "diverged" not in r]
    table = Table(title=title)
    for key in keys:
        table.add_column(key, justify="left" if key == "seed" else "right")
    for r in rows:
        if "diverged" in r:  # its metrics are NaN: the first metric column says so, the others are empty
            others = [k for k in keys if k not in ("seed", "epochs")]
            mark = f"diverged (NaN loss in epoch {r['diverged']})"
            table.add_row(*[_number(r[k]) if k in ("seed", "epochs") and k in r else mark if others and k == others[0]
                            else "" for k in keys])
        else:
            table.add_row(*[_number(r[k]) if k in r else "" for k in keys])
    label = "mean ± std" if len(finished) == len(rows) else f"mean ± std (n={len(finished)})"
    table.add_row(label, *[mean_std(summary.get(k), 1 if k == "epochs" else 4) for k in keys[1:]], style="bold")
    _print_wide(table)


def _print_wide(table) -> None:
    """Print a rich table; piped or captured, on one line per row however wide, rather than in wrapped cells."""
    console = rich_console()
    if not console.is_terminal:
        console.width = max(console.width, console.measure(table, options=console.options.update_width(1000)).maximum)
    console.print(table)


def print_trained(done: Any) -> None:
    """``train``'s output: for a seed group the last epoch of every seed and the mean ± sample std of each
    metric over the seeds, then the group folder; any other run as ``console.print_trained`` prints it."""
    group = done.group
    if getattr(group, "kind", None) != "seeds":
        from dlrecipe.console import print_trained as print_run
        print_run(done)
        return
    diverged = [r["seed"] for r in group.rows if "diverged" in r]
    note = f"; {len(diverged)} diverged, not in the mean" if diverged else ""
    _seed_table(f"{len(group.rows)} seeds (last epoch of each; mean ± sample std{note})", group.rows, group.summary)
    echo(f"Group folder: {group.run_dir} (one run per seed: seed-<s>/)")
    if diverged:
        echo(f"Diverged (NaN loss): seed {', '.join(str(s) for s in diverged)}; their folders keep the last good "
             f"epoch. Lower the learning rate and `dlrecipe train --resume {group.run_dir} --set "
             "train.learning_rate=...` retrains them.")


def print_seed_evaluation(evaluated: list[tuple[int, Any, dict]]) -> None:
    """Every seed's test metrics (the scalars of metrics.json) and their mean ± sample std; a diverged seed
    (``metrics`` ``{"diverged": epoch}``, not evaluated) is marked and left out of the mean."""
    from dlrecipe.runs import summarize
    rows = [{"seed": seed, **({"diverged": m["diverged"]} if "diverged" in m else {
        k: v for k, v in m.items() if k not in ("task", "n_test") and isinstance(v, (int, float))
        and not isinstance(v, bool)})} for seed, _, m in evaluated]
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("seed", "diverged")))
    summary = {k: summarize([r[k] for r in rows if k in r]) for k in keys}
    _seed_table("Test metrics per seed (mean ± sample std)", rows, summary)
    wrote = [str(run) for _, run, m in evaluated if "diverged" not in m]
    echo(f"Wrote metrics.json and plots/ in each of {', '.join(wrote)}")


def print_compare(result: Any, as_json: bool = False) -> None:
    """The comparison table (or compare.json with ``--json``), and the files written (on stderr with --json)."""
    if as_json:
        echo(json.dumps(result.as_json(), indent=2))
    else:
        from rich.table import Table
        paths = list(dict.fromkeys(p for r in result.rows for p in r.differs))
        table = Table(title=f"{len(result.rows)} row(s), sorted by {result.sort_key} ({result.direction})")
        table.add_column("run")
        table.add_column("n", justify="right")
        for p in paths:
            table.add_column(p, justify="right", style="cyan")
        for c in result.columns:
            table.add_column(c, justify="right")
        for r in result.rows:
            n = f"{len(r.runs)} (+{len(r.diverged)} diverged)" if r.diverged else str(len(r.runs))
            table.add_row(r.label, n, *[cell(r.differs[p]) for p in paths],
                          *[mean_std(r.metrics.get(c), 1 if c == "epochs" else 4) for c in result.columns])
        _print_wide(table)
        for r in result.rows:
            if r.diverged:
                echo(f"{r.label}: seed {', '.join(map(str, r.diverged))} diverged (NaN loss), not in the mean.")
        if not paths and len(result.rows) > 1:
            echo("The resolved recipes are the same (apart from their names).")
    line = f"Wrote {', '.join(p.name for p in result.written)} in {result.written[0].parent}"
    (err if as_json else echo)(line)


def print_report(done: Any) -> None:
    """Where the report is, its size and how many runs it shows."""
    echo(f"Wrote {done.path} ({done.size / 1024:.0f} KiB, {len(done.runs)} run(s)); open it in a browser.")
