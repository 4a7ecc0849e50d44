"""The Markdown and HTML reports of ``compare`` and ``report``.

A report is a list of blocks (headings, paragraphs, tables, figures,
preformatted text) rendered twice: ``report.md`` links its figures as PNG files
in ``plots/``; ``report.html`` embeds them as base64 ``data:`` URIs, so it is
one self-contained file that any browser shows offline.
"""

import base64
import html
import os
from dataclasses import dataclass

import numpy as np
from imblearn.metrics import classification_report_imbalanced

from ..decision.evaluation import (
    BASELINE,
    METRICS,
    TUNED_SUFFIX,
    paired_difference,
    score_predictions,
)
from . import plots

METRIC_NAMES = {
    "f1": "F1",
    "balanced_accuracy": "balanced accuracy",
    "average_precision": "average precision",
    "precision": "precision",
    "recall": "recall",
}


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list
    rows: list


@dataclass
class Image:
    name: str  # file name without extension
    png: bytes
    caption: str


@dataclass
class Preformatted:
    text: str


# -- rendering ---------------------------------------------------------------------------


def write_report(blocks, out_dir, title):
    """Write ``report.md`` (figures in ``plots/``) and ``report.html`` (figures inline).

    Returns
    -------
    md_path, html_path : str
    """
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    for block in blocks:
        if isinstance(block, Image):
            with open(os.path.join(out_dir, "plots", f"{block.name}.png"), "wb") as file:
                file.write(block.png)
    md_path = os.path.join(out_dir, "report.md")
    html_path = os.path.join(out_dir, "report.html")
    with open(md_path, "w", encoding="utf-8") as file:
        file.write(render_markdown(blocks, title))
    with open(html_path, "w", encoding="utf-8") as file:
        file.write(render_html(blocks, title))
    return md_path, html_path


def render_markdown(blocks, title):
    parts = [f"# {title}\n"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            parts.append(block.text + "\n")
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(block.header) + " |"]
            lines.append("|" + "---|" * len(block.header))
            for row in block.rows:
                lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
            parts.append("\n".join(lines) + "\n")
        elif isinstance(block, Image):
            parts.append(f"![{block.caption}](plots/{block.name}.png)\n\n*{block.caption}*\n")
        elif isinstance(block, Preformatted):
            parts.append(f"```\n{block.text.rstrip()}\n```\n")
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td:nth-child(2), th:nth-child(2) { text-align: left; }
tr:first-child td { background: #eef7ee; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""


def render_html(blocks, title):
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline_code(esc(block.text))}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(str(c))}</th>" for c in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{esc(block.caption)}" data-name="{esc(block.name)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Preformatted):
            parts.append(f"<pre>{esc(block.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline_code(text):
    """Markdown-style `code` spans as <code> (the text is already HTML-escaped)."""
    pieces = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


# -- content -----------------------------------------------------------------------------


def _fmt(mean, std):
    return f"{mean:.3f} ± {std:.3f}"


def _averaging(classes, pos_label):
    if pos_label is None:
        return (
            f"{len(classes)} classes: F1, precision and recall are macro averages, average "
            "precision is the one-vs-rest average precision averaged over classes; decisions "
            "are argmax (no threshold rows)."
        )
    return (
        f"Binary: F1, precision, recall and average precision are those of the positive class "
        f"`{pos_label}` (the rarer class unless --pos-label says otherwise)."
    )


def recommendation(comparison):
    """The plain-words verdict: is the best row better than plain cross-entropy beyond noise?"""
    metric = comparison.scoring
    name = METRIC_NAMES[metric]
    best, baseline = comparison.best, comparison.baseline
    k = comparison.n_folds
    if best is baseline:
        return [
            f"Plain cross-entropy ranks first by mean {name} "
            f"({_fmt(best.mean(metric), best.std(metric))} over {k} folds): none of the "
            're-weighting, focal or resampling variants helped here. Keep `loss="ce"`.'
        ]
    diff = paired_difference(best.fold_scores[metric], baseline.fold_scores[metric])
    text = [
        f"Best by mean {name}: **{best.name}** ({_fmt(best.mean(metric), best.std(metric))}), "
        f"against plain cross-entropy {_fmt(baseline.mean(metric), baseline.std(metric))}. "
        f"Paired over the same {k} folds the difference is {diff['mean']:+.3f} ± "
        f"{diff['std']:.3f} (mean ± sd of the per-fold differences); it is higher in "
        f"{diff['wins']} of {k} folds."
    ]
    ce_tuned = _row_or_none(comparison, BASELINE + TUNED_SUFFIX)
    if best.rule == "tuned threshold" and ce_tuned is not None and best is not ce_tuned:
        # separate the loss's share of the gain from the threshold's: same decision rule
        loss_diff = paired_difference(best.fold_scores[metric], ce_tuned.fold_scores[metric])
        text.append(
            f"Against cross-entropy with a tuned threshold too "
            f"({_fmt(ce_tuned.mean(metric), ce_tuned.std(metric))}), the difference is "
            f"{loss_diff['mean']:+.3f} ± {loss_diff['std']:.3f}, higher in "
            f"{loss_diff['wins']} of {k} folds."
        )
        if diff["exceeds_spread"] and not loss_diff["exceeds_spread"]:
            text.append(
                "So the gain over plain cross-entropy comes from the threshold; the loss adds "
                "nothing beyond the fold-to-fold spread. Use the simplest: cross-entropy "
                f"({_parameters(ce_tuned)})."
            )
            diff = None
    if diff is None:
        pass
    elif diff["exceeds_spread"] and diff["wins"] == k:
        text.append(
            f"The difference exceeds the fold-to-fold spread and holds in every fold: use "
            f"{best.name} ({_parameters(best)})."
        )
    elif diff["exceeds_spread"]:
        text.append(
            f"The difference exceeds the fold-to-fold spread on average but not in every fold: "
            f"{best.name} ({_parameters(best)}) is a reasonable choice; confirm it with more "
            "folds or more epochs before trusting it."
        )
    else:
        text.append(
            "The difference is within the fold-to-fold spread, so these data do not show that "
            'any variant beats plain cross-entropy: keep the simplest, `loss="ce"`, and '
            "measure again with more data, folds or epochs if the choice matters."
        )
    tuned = [r for r in comparison.rows if r.rule == "tuned threshold"]
    if tuned:
        gains = [r.mean(metric) - comparison.row(r.configuration.name).mean(metric) for r in tuned]
        text.append(
            f"Moving the decision threshold (tuned on each training fold's validation split) "
            f"changed mean {name} by {np.mean(gains):+.3f} on average over the configurations "
            f"(from {min(gains):+.3f} to {max(gains):+.3f}); choosing the loss moved it by up to "
            f"{_spread_of_means(comparison, metric):.3f} between argmax rows."
        )
    return text


def _row_or_none(comparison, name):
    return next((row for row in comparison.rows if row.name == name), None)


def _spread_of_means(comparison, metric):
    means = [r.mean(metric) for r in comparison.rows if r.rule == "argmax"]
    return max(means) - min(means)


def _parameters(row):
    config = row.configuration
    params = [f'loss="{config.loss}"']
    if config.loss == "focal":
        params.append(f"gamma={config.gamma:g}")
    if config.alpha:
        params.append(f'alpha="{config.alpha}"')
    if config.sampler == "over":
        params.append("sampler=RandomOverSampler()")
    elif config.sampler == "under":
        params.append("sampler=RandomUnderSampler()")
    text = ", ".join(params)
    if row.rule == "tuned threshold":
        text += (
            f", then predict the positive class above a threshold tuned on held-out data "
            f"(here {np.mean(row.thresholds):.2f} on average), e.g. with "
            "TunedThresholdClassifierCV"
        )
    return text


def comparison_blocks(comparison, data_dir=None):
    """The blocks of the ``compare`` report."""
    metric = comparison.scoring
    classes, counts = np.unique(comparison.labels, return_counts=True)
    settings = {
        k: v
        for k, v in comparison.estimator_params.items()
        if k in ("backbone", "weights", "image_size", "max_epochs", "lr", "batch_size", "monitor")
    }
    blocks = [
        Paragraph(
            (f"Data: `{data_dir}`, " if data_dir else "")
            + f"{len(comparison.labels)} images; "
            + ", ".join(f"class `{c}`: {n}" for c, n in zip(classes, counts, strict=True))
            + f". Stratified {comparison.n_folds}-fold cross-validation, ranked by mean "
            f"{METRIC_NAMES[metric]}. Shared settings: "
            + ", ".join(f"{k}={v!r}" for k, v in settings.items())
            + "."
        ),
        Paragraph(_averaging(comparison.classes, comparison.pos_label)),
        Heading("Recommendation"),
        *[Paragraph(t) for t in recommendation(comparison)],
        Heading("Ranking"),
        Paragraph(
            "Mean ± standard deviation over the test folds. A tuned-threshold row uses the "
            "same fitted models as the row without it; only the decision rule differs."
        ),
        Table(
            ["rank", "configuration", "threshold"]
            + [METRIC_NAMES[m] for m in METRICS]
            + ["fit time (s)"],
            [
                [
                    rank,
                    row.name,
                    f"{np.mean(row.thresholds):.2f}" if row.thresholds else "argmax",
                    *[_fmt(row.mean(m), row.std(m)) for m in METRICS],
                    f"{comparison.fit_seconds[row.configuration.name]:.0f}",
                ]
                for rank, row in enumerate(comparison.rows, start=1)
            ],
        ),
        Image(
            "fold_scores",
            plots.to_png(
                plots.fold_scores(
                    [(row.name, row.fold_scores[metric]) for row in comparison.rows],
                    METRIC_NAMES[metric],
                )
            ),
            f"{METRIC_NAMES[metric]} of every configuration on each test fold: where the dots "
            "of two rows overlap, their difference is within the fold-to-fold spread.",
        ),
    ]
    best = comparison.best
    config_name = best.configuration.name
    blocks += [
        Heading(f"The best configuration: {best.name}"),
        Paragraph(
            "Out-of-fold predictions: every image is predicted by the model that did not see it "
            "in training."
        ),
    ]
    blocks += evaluation_blocks(
        comparison.labels,
        best.y_pred,
        comparison.proba[config_name],
        comparison.classes,
        comparison.pos_label,
        thresholds=best.thresholds,
        histories=comparison.histories[config_name],
    )
    return blocks


def evaluation_blocks(y_true, y_pred, proba, classes, pos_label, thresholds=(), histories=()):
    """Figures and per-class figures for one model's predictions."""
    blocks = []
    if histories:
        blocks.append(
            Image(
                "training_curves",
                plots.to_png(plots.training_curves(list(histories))),
                "Training curves: loss per epoch (train and internal validation split) and the "
                "monitored validation metric; the star marks the epoch whose weights were kept.",
            )
        )
    blocks += [
        Image(
            "confusion_matrix",
            plots.to_png(plots.confusion_matrix(y_true, y_pred, classes)),
            "Confusion matrix (rows: true class, columns: predicted).",
        ),
        Image(
            "precision_recall",
            plots.to_png(plots.precision_recall(y_true, proba, classes, pos_label, thresholds)),
            "Precision-recall curve; the markers are the decisions at threshold 0.5 and at the "
            "tuned threshold.",
        ),
        Image(
            "f1_vs_threshold",
            plots.to_png(plots.metric_vs_threshold(y_true, proba, classes, pos_label, thresholds)),
            "F1 against the decision threshold: how much moving the threshold could gain.",
        ),
        Image(
            "reliability",
            plots.to_png(plots.reliability(y_true, proba, classes, pos_label)),
            "Reliability diagram: predicted probability against observed frequency (the "
            "diagonal is perfect calibration). Weighted and focal losses push it off.",
        ),
        Heading("Per-class figures", level=3),
        Paragraph(
            "imbalanced-learn's classification_report_imbalanced: precision, recall, "
            "specificity, F1, geometric mean and index of balanced accuracy per class."
        ),
        Preformatted(
            classification_report_imbalanced(
                np.asarray(y_true), np.asarray(y_pred), labels=list(classes), zero_division=0
            )
        ),
    ]
    return blocks


def model_blocks(clf, paths, labels, data_dir=None, proba=None):
    """The blocks of the ``report MODEL_DIR DATA_DIR`` report: one fitted model on labelled data.

    ``proba`` (``clf.predict_proba(paths)``) is computed here unless given.
    """
    labels = np.asarray(labels)
    proba = clf.predict_proba(paths) if proba is None else np.asarray(proba)
    classes = clf.classes_
    y_pred = classes[proba.argmax(axis=1)]
    pos_label = getattr(clf, "pos_label_", None)  # the class the model was fitted for
    if pos_label is None and len(classes) == 2:  # a pickle of 0.1 thresholded classes_[1]
        pos_label = classes[1]
    scores = score_predictions(labels, y_pred, proba, classes, pos_label)
    present, counts = np.unique(labels, return_counts=True)
    history = (
        [
            {
                "epochs": [
                    {
                        "epoch": e.get("epoch"),
                        "train_loss": e.get("train_loss"),
                        "valid_loss": e.get("valid_loss"),
                        "valid_score": e.get(f"valid_{clf.monitor}"),
                    }
                    for e in clf.history
                ],
                "best_epoch": getattr(clf, "best_epoch_", None),
                "monitor": f"valid_{clf.monitor}",
            }
        ]
        if len(getattr(clf, "history", []) or [])
        else []
    )
    blocks = [
        Paragraph(
            (f"Data: `{data_dir}`, " if data_dir else "")
            + f"{len(labels)} images; "
            + ", ".join(f"class `{c}`: {n}" for c, n in zip(present, counts, strict=True))
            + f". Model classes: {np.asarray(classes).tolist()}; decisions: argmax."
        ),
        Paragraph(_averaging(classes, pos_label)),
        Table([METRIC_NAMES[m] for m in METRICS], [[f"{scores[m]:.3f}" for m in METRICS]]),
    ]
    return blocks + evaluation_blocks(labels, y_pred, proba, classes, pos_label, histories=history)
