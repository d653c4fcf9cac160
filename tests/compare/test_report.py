"""``dlrecipe report``: one self-contained HTML page; every section present, no external URL, images decode."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

from fake_runs import fake_group, fake_run
from PIL import Image

from dlrecipe.compare.report import SECTIONS


class Page(HTMLParser):
    """The page's section classes and ids, every src/href, and the text."""

    def __init__(self):
        super().__init__()
        self.sections: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append((attrs.get("class", ""), attrs.get("id", "")))
        for key in ("src", "href"):
            if attrs.get(key):
                self.links.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(path)


def test_report_of_a_group_and_a_run_has_every_section_and_nothing_external(cli, tiny_npz, tmp_path):
    group = fake_group(tmp_path / "runs/tiny/20240102-000000", tiny_npz, seeds=(1, 2))
    run = fake_run(tmp_path / "runs/other/20240101-000000", tiny_npz, seed=7, offset=0.2)
    _png(run / "inspect" / "top_losses.png")
    (run / "export").mkdir()
    (run / "export" / "verification.json").write_text(json.dumps(
        {"max_abs_diff": {"saved_model": 2.9e-08}, "tolerance": 1e-4, "n_checked": 30, "signature": {"name": "x"}}))
    out = tmp_path / "report.html"
    result = cli("report", group, run, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert f"Wrote {out}" in result.stdout
    page = parse(out)
    classes = [c for c, _ in page.sections]
    assert classes[0] == "comparison"  # several rows: the comparison first
    assert classes.count("run") == 3  # seed 1, seed 2 and the single run
    for kind in SECTIONS:
        assert classes.count(kind) == 3, kind
    ids = [i for _, i in page.sections]
    assert len(ids) == len(set(ids))
    for link in page.links:
        assert not link.startswith(("http://", "https://", "//")), link
        assert link.startswith(("#", "data:image/png;base64,")), link
    assert "script" not in page.tags and "link" not in page.tags
    images = [link for link in page.links if link.startswith("data:")]
    assert len(images) >= 3 + 3 + 3 + 1  # overlays (loss, accuracy, lr), curves and confusion per run, top losses
    for link in images:
        with Image.open(io.BytesIO(base64.b64decode(link.split(",", 1)[1]))) as image:
            image.load()
    text = " ".join(page.text)
    assert "seed" in text and "2.9e-08" in text and "saved_model" in text
    assert "Diagnosis" in text and "middle" in text  # the per-class table's class names
    assert f"dlrecipe inspect {group / 'seed-1'}" in text  # no gallery yet: says how to make one
    assert f"dlrecipe export {group / 'seed-1'}" in text


def test_report_of_an_unevaluated_run_says_how_to_evaluate_it(cli, tiny_npz, tmp_path):
    run = fake_run(tmp_path / "runs/tiny/20240101-000000", tiny_npz, evaluated=False)
    (run / "environment.json").unlink()
    out = tmp_path / "one.html"
    result = cli("report", run, "--out", out)
    assert result.exit_code == 0, result.stderr
    page = parse(out)
    assert [c for c, _ in page.sections][0] == "run"  # one run: no comparison
    text = " ".join(page.text)
    assert f"dlrecipe evaluate {run}" in text
    assert "at report time" in text  # no environment.json: the versions now, labelled


def test_report_bad_input_exits_2_and_writes_nothing(cli, tiny_npz, tmp_path):
    run = fake_run(tmp_path / "runs/tiny/20240101-000000", tiny_npz)
    for args, expected in (((run, "--out", tmp_path / "r.txt"), "Expected a file name ending in .html"),
                           ((tmp_path / "nowhere", "--out", tmp_path / "r.html"), "Not a run folder")):
        result = cli("report", *args)
        assert result.exit_code == 2 and expected in result.stderr
    assert not (tmp_path / "r.txt").exists() and not (tmp_path / "r.html").exists()
