"""The report stays readable for a project with 1,000 versions and 100,000 unlabeled tasks: every
plot keeps a handful of legend entries placed off the data, tick labels do not collide, and a
real browser (headless Chromium) renders the page with every section."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from backend.oversight.collect import collect
from backend.oversight.report import FIGURES, write_report
from backend.stores.audit import AuditStore, Correction
from backend.stores.queue_state import SyncState, queue_state_location
from backend.stores.registry import Registry

VERSIONS, POOL = 1000, 100_000

pytestmark = pytest.mark.slow  # builds a 100k-task project and opens a browser: --quick leaves it out


@pytest.fixture(scope="module")
def big_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    versions = root / "registry" / "5" / "versions"
    names = [f"v{i}-20261125{i // 60 % 24:02d}{i % 60:02d}00" for i in range(1, VERSIONS + 1)]
    for i, name in enumerate(names):  # the registry's on-disk format, written directly for speed
        (versions / name).mkdir(parents=True)
        n = 5 + i // 4
        metrics = {"primary": float(0.6 + 0.3 * i / VERSIONS), "n": n}
        meta = {
            "version": name,
            "created_at": 1.8e9 + i,
            "metrics": metrics,
            "training": {"kind": "full" if i % 100 == 99 else "head", "examples": 10 + 4 * i},
        }
        if name == names[-1]:
            bins = [[c, min(1.0, c + rng.normal(0, 0.03)), int(n / 10)] for c in np.linspace(0.15, 0.95, 9)]
            meta["calibration"] = {"temperature": 1.2, "heldout_ece_after": 0.021, "reliability_after": bins}
        (versions / name / "meta.json").write_text(json.dumps(meta))
    (root / "registry" / "5" / "CURRENT").write_text(names[-1])
    audit = AuditStore(str(root / "audit.sqlite3"))
    for i, name in enumerate(names):
        audit.record_version(
            5,
            name,
            "head",
            True,
            10 + 4 * i,
            "fp",
            {"primary": 0.6 + 0.3 * i / VERSIONS, "n": 5 + i // 4},
            {"reason": "ok"},
        )
        if i % 3 == 0:
            audit.record_version(
                5,
                f"rejected-{i}",
                "head",
                False,
                10 + 4 * i,
                "fp",
                {"primary": 0.5, "n": 5 + i // 4},
                {"reason": "worse"},
            )
    changed = rng.random(20_000) < 0.3
    audit.record_corrections(
        Correction(5, k, k, "1", f"2026-11-25T{k:08d}", names[k % VERSIONS], 0.5, [], [], bool(changed[k]), None)
        for k in range(20_000)
    )
    state = SyncState(queue_state_location(root))
    scores = rng.beta(2, 5, POOL)
    state.put(5, [(t, names[-1], "h", t % 20, float(t) / POOL, float(scores[t]), 0.5) for t in range(POOL)])
    state.put(5, [(POOL + t, names[-2], "h", 0, 0.0, 0.1, 0.5) for t in range(500)])  # an older sync's rows...
    state.prune(5, set(range(POOL)))  # ...gone once those tasks left the pool
    return root, audit, Registry(root / "registry")


def test_each_plot_keeps_its_legend_and_ticks_off_the_data(big_project):
    root, audit, registry = big_project
    data = collect(5, audit, registry, queue_state_location(root))
    assert len(data.versions) == VERSIONS and len(data.queue_scores[data.current]) == POOL
    assert set(data.queue_scores) == {data.current}  # annotated tasks no longer count as unlabeled
    for name, make in FIGURES.items():
        fig = make(data)
        assert fig is not None, name
        FigureCanvasAgg(fig).draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        plot_box = ax.get_window_extent(renderer)
        legend = ax.get_legend()
        if legend is not None:
            assert len(legend.get_texts()) <= 3, (name, [t.get_text() for t in legend.get_texts()])
            assert not legend.get_window_extent(renderer).overlaps(plot_box), f"{name}: legend on the plot"
        labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
        assert len(labels) <= 15, (name, len(labels))
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert not any(a.overlaps(b) for a, b in itertools.pairwise(boxes)), f"{name}: tick labels collide"
        width, height = fig.get_size_inches()
        assert width <= 9.5 and height <= 5  # a page-wide plot, however many versions


def test_the_report_renders_in_a_real_browser(big_project, tmp_path):
    root, audit, registry = big_project
    started = time.perf_counter()
    page = write_report(5, audit, registry, queue_state_location(root), tmp_path / "report.html")
    assert time.perf_counter() - started < 60
    text = page.read_text()
    for title in ("Quality per model version", "Calibration", "Queue", "Retrain history", "Candidates"):
        assert f"<h2>{title}</h2>" in text
    assert text.count('src="data:image/png;base64,') == 4
    candidates = text.split("<h2>Candidates</h2>")[1]
    assert "the newest 50 of 1334 candidates" in candidates and candidates.count("<tr>") == 51
    assert all(section.count("<tr>") <= 51 for section in text.split("<h2>"))  # every table bounded
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed for this test: apt-get install chromium (test.sh does, as root)"
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1100,4000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), done.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (4000, 1100)
    painted = (image < 240).any(axis=2).mean(axis=1) > 0.01  # rows of the page with content
    assert painted[:3000].mean() > 0.3, "the four plots and the table fill the page"
    shutil.copy(shot, root / "report.png")  # kept for a person to look at (pytest's tmp folder)
