"""The compare report: recommendation wording, Markdown and self-contained HTML with figures."""

import base64
import io
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

from imbal_estimators.app.compare import Comparison, Configuration, RowResult, compare
from imbal_estimators.app.report import comparison_blocks, recommendation, write_report

CHROMIUM = "/usr/bin/chromium"
GRID = (
    Configuration("ce"),
    Configuration("ce, alpha=balanced", alpha="balanced"),
)
PARAMS = {k: v for k, v in TINY.items() if k != "random_state"}


@pytest.fixture(scope="module")
def binary_report(binary_data, tmp_path_factory):
    X, y = binary_data
    result = compare(X, y, configurations=GRID, cv=2, estimator_params=PARAMS, progress=False)
    out = tmp_path_factory.mktemp("report")
    write_report(comparison_blocks(result, "data/pets"), str(out), "compare: data/pets")
    return result, out


def embedded_images(html_text):
    return re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)


def test_html_embeds_every_figure_as_a_decodable_png(binary_report):
    _, out = binary_report
    page = (out / "report.html").read_text()
    images = embedded_images(page)
    names = re.findall(r'data-name="([a-z_0-9]+)"', page)
    assert names == [
        "fold_scores",
        "training_curves",
        "confusion_matrix",
        "precision_recall",
        "f1_vs_threshold",
        "reliability",
    ]
    for data in images:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and image.width > 200 and image.height > 150
    assert 'src="plots/' not in page  # self-contained: no file references
    for text in ("Recommendation", "Ranking", "ce + tuned threshold", "pre ", "spe "):
        assert text in page


def test_markdown_links_figures_written_beside_it(binary_report):
    result, out = binary_report
    markdown = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\((plots/[a-z_0-9]+\.png)\)", markdown)
    assert len(links) == 6
    for link in links:
        assert (out / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the ranked table holds every row, best first, as mean ± std
    best = result.rows[0]
    assert f"| 1 | {best.name} |" in markdown
    assert f"{best.mean('f1'):.3f} ± {best.std('f1'):.3f}" in markdown
    assert markdown.count("\n| ") == 1 + len(result.rows)  # header + rows


def fake_comparison(best_scores, baseline_scores, tuned=None):
    """A comparison with given F1 per fold (no plots needed for the verdict).

    ``tuned``: ``(best_tuned_scores, ce_tuned_scores)`` adds tuned-threshold rows.
    """
    rows = []
    scores_of = {"focal g=2": best_scores, "ce": baseline_scores}
    if tuned:
        scores_of.update(
            {"focal g=2 + tuned threshold": tuned[0], "ce + tuned threshold": tuned[1]}
        )
    for name, scores in scores_of.items():
        base = name.removesuffix(" + tuned threshold")
        config = Configuration(base, loss="focal" if "focal" in name else "ce", gamma=2.0)
        row = RowResult(name, config, "tuned threshold" if name != base else "argmax")
        row.fold_scores["f1"] = list(scores)
        row.thresholds = [0.6] * len(scores) if name != base else []
        rows.append(row)
    rows.sort(key=lambda r: -r.mean("f1"))
    n = len(best_scores)
    return Comparison(
        classes=np.array([0, 1]),
        pos_label=1,
        scoring="f1",
        labels=np.zeros(n),
        folds=np.arange(n),
        rows=rows,
        proba={},
        histories={},
        fit_seconds={},
        estimator_params={},
    )


def test_recommendation_names_a_gain_beyond_the_fold_spread():
    text = " ".join(recommendation(fake_comparison([0.80, 0.82, 0.81], [0.70, 0.71, 0.72])))
    assert "focal g=2" in text and "+0.100" in text
    assert "exceeds the fold-to-fold spread and holds in every fold" in text
    assert 'loss="focal", gamma=2' in text


def test_recommendation_keeps_ce_when_the_gain_is_noise():
    text = " ".join(recommendation(fake_comparison([0.80, 0.60, 0.76], [0.70, 0.72, 0.71])))
    assert "higher in 2 of 3 folds" in text
    assert "within the fold-to-fold spread" in text and 'keep the simplest, `loss="ce"`' in text


def test_recommendation_separates_the_threshold_from_the_loss():
    # the numbers of the 1000-vs-300 run: the threshold, not the focal loss, makes the gain
    result = fake_comparison(
        [0.77, 0.70, 0.76], [0.77, 0.47, 0.76], tuned=([0.87, 0.81, 0.90], [0.85, 0.81, 0.82])
    )
    assert result.best.name == "focal g=2 + tuned threshold"
    text = " ".join(recommendation(result))
    assert "Against cross-entropy with a tuned threshold too" in text
    assert "+0.033" in text and "higher in 2 of 3 folds" in text
    assert "comes from the threshold" in text and "Use the simplest: cross-entropy" in text
    assert "use focal g=2" not in text
    # a focal gain beyond the spread with the same decision rule is recommended
    clear = fake_comparison(
        [0.77, 0.70, 0.76], [0.77, 0.47, 0.76], tuned=([0.90, 0.88, 0.91], [0.80, 0.79, 0.82])
    )
    assert "use focal g=2 + tuned threshold" in " ".join(recommendation(clear))


def test_recommendation_when_ce_wins():
    text = " ".join(recommendation(fake_comparison([0.60, 0.61, 0.62], [0.70, 0.71, 0.72])))
    assert text.startswith("Plain cross-entropy ranks first")


def chromium_command(user_data_dir):
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_data_dir}",
        "--virtual-time-budget=10000",
    ]


@pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="/usr/bin/chromium is not installed (.ci/run installs Debian's chromium)",
)
def test_report_renders_with_its_images_in_headless_chromium(binary_report, tmp_path):
    _, out = binary_report
    # the page plus a script that counts the images the browser decoded once loaded
    page = (
        (out / "report.html")
        .read_text()
        .replace(
            "</body>",
            "<script>window.addEventListener('load', function () {"
            " var all = Array.from(document.images);"
            " var ok = all.filter(function (i) { return i.complete && i.naturalWidth > 0; });"
            " var p = document.createElement('p'); p.id = 'image-check';"
            " p.textContent = ok.length + '/' + all.length; document.body.appendChild(p);"
            "});</script></body>",
        )
    )
    check = tmp_path / "check.html"
    check.write_text(page)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        result = subprocess.run(
            [*chromium_command(profile), "--dump-dom", check.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'id="image-check">(\d+)/(\d+)<', result.stdout)
    assert found, result.stdout[-2000:]
    assert found.group(1) == found.group(2) == "6"
