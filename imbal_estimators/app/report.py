"""The Markdown and HTML reports of ``compare`` and ``report``.

A report is a list of blocks (headings, paragraphs, tables, figures,
preformatted text) rendered twice: ``report.md`` links its figures as PNG files
in ``plots/``; ``report.html`` embeds them as base64 ``data:`` URIs, so it is
one self-contained file that any browser shows offline.
"""

import base64
import html
import os
from dataclasses import dataclass, field

import numpy as np
from imblearn.metrics import classification_report_imbalanced

from ..data.labels import plain_value
from ..decision.evaluation import METRICS, score_predictions
from ..io.markdown import code, fence
from ..training.callbacks import history_key
from . import plots
from .moved import what_moved
from .plan import dropped_lines
from .recommend import selection_note

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
    highlight: set = field(default_factory=set)  # row indices shown highlighted


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
            mark = fence(block.text)  # a class name holding ``` cannot end the block
            parts.append(f"{mark}\n{block.text.rstrip()}\n{mark}\n")
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
.table-wrap { overflow-x: auto; max-width: 100%; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; }
td:nth-child(2), th:nth-child(2) { text-align: left; white-space: normal; min-width: 12em; }
tr.highlight td { background: #eef7ee; font-weight: 600; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em;
      white-space: pre-wrap; }
"""


def render_html(blocks, title):
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{_inline(esc(block.text))}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(esc(block.text))}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(esc(str(c)))}</th>" for c in block.header)
            body = "".join(
                (' <tr class="highlight">' if i in block.highlight else "<tr>")
                + "".join(f"<td>{_inline(esc(str(c)))}</td>" for c in row)
                + "</tr>"
                for i, row in enumerate(block.rows)
            )
            parts.append(
                f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>"
            )
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{esc(block.caption)}" data-name="{esc(block.name)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(esc(block.caption))}</figcaption></figure>"
            )
        elif isinstance(block, Preformatted):
            parts.append(f"<pre>{esc(block.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline(text):
    """Markdown's inline `code` and **bold** as HTML (the text is already HTML-escaped)."""
    pieces = text.split("`")
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(f"<code>{piece}</code>")
        else:
            bold = piece.split("**")
            if len(bold) % 2 == 0:  # an unpaired ** stays as it is
                out.append(piece)
            else:
                out.append(
                    "".join(f"<strong>{b}</strong>" if j % 2 else b for j, b in enumerate(bold))
                )
    return "".join(out)


# -- content -----------------------------------------------------------------------------


def _fmt(mean, std):
    return f"{mean:.3f} ± {std:.3f}"


def _averaging(classes, pos_label):
    if pos_label is None:
        return (
            f"{len(classes)} classes: F1, precision and recall are macro averages, average "
            "precision is the one-vs-rest average precision averaged over classes."
        )
    return (
        f"Binary: F1, precision, recall and average precision are those of the positive class "
        f"{code(plain_value(pos_label))} (the rarer class unless --pos-label says otherwise); "
        "a tuned threshold applies to its probability."
    )


def _rare_per_fold(comparison):
    counts = [
        int(np.min(np.unique(comparison.labels[test], return_counts=True)[1]))
        for _, test in comparison.splits
    ]
    return float(np.mean(counts))


def recommendation(comparison):
    """The plain-words verdict, as paragraphs: only what the paired folds support."""
    rec = comparison.recommendation
    metric = comparison.scoring
    name = METRIC_NAMES[metric]
    best = rec.best
    n = comparison.n_folds
    folds = f"{n} folds" + (
        f" ({comparison.cv} folds x {comparison.repeats} repeats)" if comparison.repeats > 1 else ""
    )
    text = [
        f"Best by mean {name}: {best.name} ({_fmt(best.mean(metric), best.std(metric))} over "
        f"{folds})."
    ]
    for simple in rec.simple:
        if simple.name not in rec.tests:
            continue
        test = rec.tests[simple.name]
        text.append(
            f"Against {simple.name} ({_fmt(simple.mean(metric), simple.std(metric))}) the paired "
            f"difference is {test.mean:+.3f} ± {test.std:.3f} (mean ± sd over the same {n} "
            f"folds; higher in {test.wins} of {n}); corrected resampled t-test (Nadeau and "
            f"Bengio 2003): t = {test.t:.2f}, p = {test.p_value:.3f}"
            + selection_note(rec, simple.name)
            + "."
        )
    row = rec.row
    if rec.verdict == "undertrained":
        text.append(
            rec.undertraining.message()
            + f" Recommended for now: **{row.name}** ({parameters(row)})."
        )
    elif rec.verdict == "baseline_best":
        tuned = row.rule == "tuned threshold"
        first = "Plain cross-entropy" + (" with a tuned threshold" if tuned else "")
        variants = "focal or resampling" if tuned else "focal, resampling or threshold"
        text.append(
            f"{first} ranks first: none of the re-weighting, {variants} variants helped "
            f"here. Recommended: **{row.name}** ({parameters(row)})."
        )
    elif rec.verdict == "supported":
        text.append(
            "The paired test supports the difference against the simpler configurations "
            "(p < 0.05, adjusted for picking the best of the rows compared). "
            f"Recommended: **{row.name}** ({parameters(row)})."
        )
    else:
        p = (rec.adjusted or {}).get(row.name, float("nan"))
        text.append(
            f"With {folds} and about {_rare_per_fold(comparison):.0f} rare-class images per test "
            f"fold there are too few folds or rare images to tell {best.name} from {row.name}: "
            f"the difference is within the noise (p = {p:.2f}). Recommended: the simplest "
            f"configuration within the noise, **{row.name}** ({parameters(row)}). To tell them "
            "apart, add images or folds (--repeats)."
        )
    if rec.contest is not None:
        text.append(contest_text(rec.contest, metric, n))
    return text


def contest_text(contest, metric, n_folds):
    """The frozen screen's recommendation against the fine-tuned confirm's, in words."""
    frozen, finetuned, test = contest.frozen, contest.finetuned, contest.test
    if contest.frozen_won:
        verdict = "the saved model is the frozen one, better beyond the noise"
    else:
        verdict = (
            "the saved model is the fine-tuned one: the frozen one is not better beyond the noise"
        )
    text = (
        f"The frozen screen's recommendation, {frozen.name} on frozen backbone features "
        f"({_fmt(frozen.mean(metric), frozen.std(metric))}), and the fine-tuned one, "
        f"{finetuned.name} ({_fmt(finetuned.mean(metric), finetuned.std(metric))}), were "
        f"scored on the same {n_folds} folds (frozen minus fine-tuned {test.mean:+.3f}, "
        f"p = {test.p_value:.3f}): {verdict}."
    )
    under = contest.finetuned_recommendation.undertraining
    if contest.frozen_won and under is not None:
        text += " " + under.message()
    return text


def parameters(row):
    """The estimator parameters of a row, as Python keyword arguments."""
    params = dict(row.configuration.params)
    if row.rule == "tuned threshold":
        params["threshold"] = "auto"
    elif row.rule == "post-hoc adjustment":
        params["posthoc_tau"] = 1.0
    if row.stage == "screen":
        params["freeze_backbone"] = True
    return ", ".join(f"{k}={plain_value(v)!r}" for k, v in params.items() if v is not None)


def _ranking_table(comparison, stage):
    metric_columns = [METRIC_NAMES[m] for m in METRICS]
    recommended = comparison.recommendation.row if comparison.recommendation else None
    rows, highlight = [], set()
    for rank, row in enumerate(stage.rows, start=1):
        if row is recommended:
            highlight.add(rank - 1)
        rows.append(
            [
                rank,
                row.name + (" (recommended)" if row is recommended else ""),
                f"{np.mean(row.thresholds):.2f}" if row.thresholds else row.rule,
                *[_fmt(row.mean(m), row.std(m)) for m in METRICS],
                f"{stage.fit_seconds.get(row.configuration.name, 0.0):.0f}",
            ]
        )
    header = ["rank", "configuration", "decision", *metric_columns, "fit time (s)"]
    return Table(header, rows, highlight)


def comparison_blocks(comparison, data_dir=None, model_dir=None):
    """The blocks of the ``compare`` report."""
    blocks = _summary_blocks(comparison, data_dir)
    if comparison.best_estimator_ is not None:
        blocks.append(_refit_paragraph(comparison, data_dir, model_dir))
    blocks += [Heading("Plan"), Preformatted("\n".join(comparison.plan_lines))]
    removed = getattr(comparison.plan, "removed", ())
    if removed:  # the budget's drops, those made while running included: one per line
        blocks += [
            Heading("Not run: dropped by the budget"),
            Preformatted("\n".join(dropped_lines(removed, data_dir or "DATA_DIR"))),
        ]
    blocks += _stage_blocks(comparison)
    return blocks + _recommended_blocks(comparison)


def _summary_blocks(comparison, data_dir):
    """What moved the score, the data and settings, and the recommendation."""
    metric = comparison.scoring
    classes, counts = np.unique(comparison.labels, return_counts=True)
    settings = {
        k: v
        for k, v in comparison.estimator_params.items()
        if k in ("backbone", "weights", "image_size", "max_epochs", "lr", "batch_size", "monitor")
    }
    folds = f"{comparison.cv}-fold" + (
        f" x {comparison.repeats} repeats" if comparison.repeats > 1 else ""
    )
    moved = what_moved(comparison)
    blocks = [Heading("What moved the score"), Paragraph(moved)] if moved else []
    return blocks + [
        Paragraph(
            (f"Data: {code(data_dir)}, " if data_dir else "")
            + f"{len(comparison.labels)} images; "
            + ", ".join(f"class {code(c)}: {n}" for c, n in zip(classes, counts, strict=True))
            + f". Stratified {folds} cross-validation, ranked by mean "
            f"{METRIC_NAMES[metric]}. Shared settings: "
            + ", ".join(f"{k}={v!r}" for k, v in settings.items())
            + "."
        ),
        Paragraph(_averaging(comparison.classes, comparison.pos_label)),
        Heading("Recommendation"),
        *[Paragraph(t) for t in recommendation(comparison)],
    ]


def _refit_paragraph(comparison, data_dir, model_dir):
    """How the recommended configuration was refitted, where it is saved, its command."""
    where = f" and saved to {code(model_dir)}" if model_dir else ""
    refits = comparison.plan.refits
    members = (
        f" {refits} times (seeds random_state, random_state + 1, ...), its probabilities "
        "averaged as one ensemble,"
        if refits > 1
        else ""
    )
    command = comparison.fit_command(
        comparison.recommended, data_dir or "DATA_DIR", ensemble=refits
    )
    return Paragraph(
        f"The recommended configuration was refitted{members} on all "
        f"{len(comparison.labels)} images{where} (load it with `imbal_estimators.load`, "
        "or `imbal-estimators predict`). The same model from the command line: "
        f"`{command}`."
    )


def _recommended_blocks(comparison):
    """The recommended row's out-of-fold mistakes, figures and per-class figures."""
    best = comparison.recommended
    config_name = best.configuration.name
    # the frozen screen's row when it won against the fine-tuned one (recommend.StageContest)
    stage = next((s for s in comparison.stages if any(r is best for r in s.rows)), comparison.final)
    blocks = [
        Heading(f"The recommended configuration: {best.name}"),
        Paragraph(
            "Out-of-fold predictions (first repeat): every image is predicted by the model that "
            "did not see it in training."
        ),
    ]
    blocks += gallery_blocks(comparison, best, stage)
    blocks += evaluation_blocks(
        comparison.labels,
        best.y_pred,
        stage.proba[config_name],
        comparison.classes,
        comparison.pos_label,
        thresholds=best.thresholds[: comparison.cv],
        histories=stage.histories[config_name],
        params=best.configuration.params,
        out_of_fold=True,
    )
    return blocks


def _stage_blocks(comparison):
    """Each stage's ranking, the fits that failed, and every row's fold scores."""
    screen = comparison.screen
    failures = comparison.final.failures | (screen.failures if screen else {})
    blocks = _screen_blocks(comparison) + [
        Paragraph(
            "Mean ± standard deviation over the test folds. A tuned-threshold (or post-hoc "
            "adjustment) row uses the same fitted models as the row without it; only the "
            'decision rule differs. The threshold is the estimator\'s own (`threshold="auto"`, '
            "tuned on the internal validation split of each training fold; a frozen head's on "
            "the out-of-fold predictions of an inner k-fold CV of each training fold)."
        ),
        _ranking_table(comparison, comparison.final),
    ]
    if failures:
        blocks.append(
            Paragraph(
                "Could not be fitted (left out of the ranking): "
                + "; ".join(f"{name}: {error}" for name, error in failures.items())
            )
        )
    metric = comparison.scoring
    blocks.append(
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
        )
    )
    return blocks


def _screen_blocks(comparison):
    """Stage 1's ranking and how well it predicted stage 2's, or why it was skipped."""
    screen = comparison.screen
    if screen is None:
        return [
            Heading("Ranking"),
            Paragraph(
                f"Stage 1 (screening on frozen backbone features) was skipped: "
                f"{comparison.screen_note}."
            ),
        ]
    rho = comparison.rank_agreement()
    agreement = (
        f"Spearman's rank correlation between the two stages over stage 2's rows: {rho:+.2f}"
        if np.isfinite(rho)
        else "too few rows in stage 2 to measure how well stage 1 ranked them"
    )
    return [
        Heading("Stage 1: screen on frozen backbone features"),
        Paragraph(
            "Every configuration trains a linear head on the frozen backbone's features "
            "(one feature pass; the SMOTE family interpolates in this embedding space). The "
            f"top {len({r.configuration.name for r in comparison.rows}) - 1} that can be "
            "fine-tuned, plus plain cross-entropy, go on to stage 2."
        ),
        _ranking_table(comparison, screen),
        Heading("Stage 2: confirm, fine-tuned"),
        Paragraph(f"How well stage 1 ranked stage 2's rows: {agreement}."),
    ]


def gallery_blocks(comparison, row, stage):
    """Thumbnails of the rare-class images ``row`` misses and of its false alarms."""
    from .gallery import mistakes

    first = np.zeros(len(comparison.labels), dtype=bool)
    for _, test in comparison.splits[: comparison.cv]:
        first[test] = True
    rare, misses, alarms = mistakes(
        comparison.paths[first],
        comparison.labels[first],
        row.y_pred[first],
        stage.proba[row.configuration.name][first],
        comparison.classes,
        comparison.pos_label,
    )
    blocks = [Heading("What it gets wrong", level=3)]
    for items, kind, what in (
        (misses, "misses", f"images of class {code(plain_value(rare))} predicted as another class"),
        (alarms, "false_alarms", f"images of other classes predicted as {code(plain_value(rare))}"),
    ):
        label = "Misses" if kind == "misses" else "False alarms"
        if not items:
            blocks.append(Paragraph(f"{label}: none ({what})."))
            continue
        blocks.append(
            Image(
                f"gallery_{kind}",
                plots.to_png(plots.gallery(items, f"{label}: {what}".replace("`", ""))),
                f"{label} (out-of-fold, most confident first; P is the probability of class "
                f"{code(plain_value(rare))}): {what}. Up to 12 shown.",
            )
        )
    return blocks


def evaluation_blocks(
    y_true,
    y_pred,
    proba,
    classes,
    pos_label,
    thresholds=(),
    histories=(),
    params=None,
    out_of_fold=False,
):
    """Figures and per-class figures for one model's predictions.

    ``params`` (the model's estimator parameters) lets the calibration caption name
    what moves its probabilities; ``out_of_fold``: the predictions are pooled
    out-of-fold ones, whose average precision differs from the mean over folds.
    """
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
            plots.to_png(
                plots.precision_recall(
                    y_true, proba, classes, pos_label, thresholds, pooled=out_of_fold
                )
            ),
            _precision_recall_caption(out_of_fold),
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
            "diagonal is perfect calibration)." + calibration_note(params),
        ),
    ]
    return blocks + _per_class_blocks(y_true, y_pred, classes)


def _precision_recall_caption(out_of_fold):
    caption = (
        "Precision-recall curve; the markers are the decisions at threshold 0.5 and at the "
        "tuned threshold."
    )
    if out_of_fold:
        caption += (
            " The AP in the legend is computed once on the out-of-fold predictions of all "
            "folds pooled; the table's average precision is the mean of one AP per test fold, "
            "so the two differ (pooling mixes the folds' differently scaled probabilities)."
        )
    return caption


def _per_class_blocks(y_true, y_pred, classes):
    """imbalanced-learn's per-class report of the predictions."""
    return [
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


def calibration_note(params):
    """What in ``params`` (estimator parameters) moves the probabilities off the diagonal,
    as a sentence; empty for a model that nothing of the kind changed (plain cross-entropy)."""
    params = params or {}
    causes = []
    loss = params.get("loss") or "ce"
    if loss in ("focal", "cb_focal"):
        if params.get("gamma") is None or params["gamma"] > 0:
            causes.append("the focal loss (it flattens confident probabilities)")
    elif loss not in ("ce", "logit_adjusted", "balanced_softmax") and isinstance(loss, str):
        causes.append(f"the {loss} loss")
    if params.get("alpha") is not None:
        causes.append(f"the class weights (alpha={plain_value(params['alpha'])!r})")
    if params.get("sampler") is not None:
        causes.append("the resampling (it raises the rare class's probabilities)")
    if not causes:
        return ""
    return " Here " + " and ".join(causes) + " can push it off the diagonal."


def _model_params(clf):
    member = (getattr(clf, "members_", None) or [getattr(clf, "estimator", clf)])[0]
    names = ("loss", "gamma", "alpha", "sampler")
    return {name: getattr(member, name, None) for name in names}


def model_blocks(clf, paths, labels, data_dir=None, proba=None):
    """The blocks of the ``report MODEL_DIR DATA_DIR`` report: one fitted model on labelled data.

    ``proba`` (``clf.predict_proba(paths)``) is computed here unless given.
    """
    labels = np.asarray(labels)
    proba = clf.predict_proba(paths) if proba is None else np.asarray(proba)
    classes = clf.classes_
    y_pred = clf.decide(proba)  # the model's own decision rule, as predict
    pos_label = getattr(clf, "pos_label_", None)  # the class the model was fitted for
    if pos_label is None and len(classes) == 2:  # a pickle of 0.1 thresholded classes_[1]
        pos_label = classes[1]
    scores = score_predictions(labels, y_pred, proba, classes, pos_label)
    present, counts = np.unique(labels, return_counts=True)
    members = getattr(clf, "members_", [clf])  # an ensemble: one history per member
    history = [
        {
            "epochs": [
                {
                    "epoch": e.get("epoch"),
                    "train_loss": e.get("train_loss"),
                    "valid_loss": e.get("valid_loss"),
                    "valid_score": e.get(history_key(member.monitor)),
                }
                for e in member.history
            ],
            "best_epoch": getattr(member, "best_epoch_", None),
            "monitor": history_key(member.monitor),
        }
        for member in members
        if len(getattr(member, "history", []) or [])
    ]
    blocks = [
        Paragraph(
            (f"Data: {code(data_dir)}, " if data_dir else "")
            + f"{len(labels)} images; "
            + ", ".join(f"class {code(c)}: {n}" for c, n in zip(present, counts, strict=True))
            + f". Model classes: {code(np.asarray(classes).tolist())}"
            + (f" ({len(members)} members, probabilities averaged)" if len(members) > 1 else "")
            + f"; decisions: {code(clf.decision_rule())}."
        ),
        Paragraph(_averaging(classes, pos_label)),
        Table([METRIC_NAMES[m] for m in METRICS], [[f"{scores[m]:.3f}" for m in METRICS]]),
    ]
    return blocks + evaluation_blocks(
        labels, y_pred, proba, classes, pos_label, histories=history, params=_model_params(clf)
    )
