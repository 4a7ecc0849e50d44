"""The report's figures, as PNG bytes.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``,
rendered by the Agg canvas), so nothing here needs a display or touches
pyplot's global state; scikit-learn's Display classes draw on their axes.
Every function returns a ``Figure``; :func:`to_png` renders it.
"""

import io

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import CalibrationDisplay, calibration_curve
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    precision_recall_curve,
)

from ..decision.threshold import threshold_curve


def to_png(figure, dpi=100):
    """Render ``figure`` as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _column(classes, label):
    return int(np.flatnonzero(np.asarray(classes) == label)[0])


def training_curves(histories, title=""):
    """Loss and validation metric per epoch, one line per fold; best epochs starred.

    Parameters
    ----------
    histories : list of dict
        One per fit: ``{"epochs": [{"epoch", "train_loss", "valid_loss",
        "valid_score"}, ...], "best_epoch": int, "monitor": str}``.
    """
    figure = Figure(figsize=(9, 3.4))
    loss_ax, score_ax = figure.subplots(1, 2)
    monitor = histories[0]["monitor"] if histories else "valid score"
    for fold, history in enumerate(histories):
        color = f"C{fold % 10}"
        epochs = [e["epoch"] for e in history["epochs"]]
        train = [_nan(e["train_loss"]) for e in history["epochs"]]
        valid = [_nan(e["valid_loss"]) for e in history["epochs"]]
        score = [_nan(e["valid_score"]) for e in history["epochs"]]
        loss_ax.plot(epochs, train, "-o", color=color, ms=3, label=f"fold {fold + 1} train")
        loss_ax.plot(epochs, valid, "--s", color=color, ms=3, label=f"fold {fold + 1} valid")
        score_ax.plot(epochs, score, "-o", color=color, ms=3, label=f"fold {fold + 1}")
        best = history.get("best_epoch")
        if best is not None and 1 <= best <= len(score):
            score_ax.plot(best, score[best - 1], "*", color=color, ms=14, mec="black")
            loss_ax.axvline(best, color=color, lw=0.8, alpha=0.5)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: valid)")
    score_ax.set(xlabel="epoch", ylabel=monitor, title=f"{monitor} (star: epoch kept)")
    for ax in (loss_ax, score_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    score_ax.legend(fontsize=7)
    if title:
        figure.suptitle(title)
    return figure


def _nan(value):
    return np.nan if value is None else float(value)


def confusion_matrix(y_true, y_pred, classes, title=""):
    """Counts of true (rows) against predicted (columns) labels."""
    figure = Figure(figsize=(4.2, 3.6))
    ax = figure.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(classes), ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_title(title or "confusion matrix")
    return figure


def precision_recall(y_true, proba, classes, pos_label=None, thresholds=(), pooled=False):
    """Precision-recall curve(s); the decision thresholds are marked.

    Binary: the positive class's curve, with the points of threshold 0.5 and of
    the tuned ``thresholds`` (their median over folds). Multi-class: one
    one-vs-rest curve per class. ``pooled``: the predictions are out-of-fold
    ones pooled over folds, and the legend's AP says so (it is not the mean of
    the per-fold APs).
    """
    suffix = ", pooled" if pooled else ""
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    figure = Figure(figsize=(4.8, 3.8))
    ax = figure.subplots()
    if pos_label is None:
        for i, label in enumerate(classes):
            if np.any(y_true == label):
                PrecisionRecallDisplay.from_predictions(
                    y_true == label, proba[:, i], ax=ax, name=f"{label} vs rest{suffix}"
                )
        ax.set_title("precision-recall, one-vs-rest (decision: argmax)")
    else:
        p = proba[:, _column(classes, pos_label)]
        PrecisionRecallDisplay.from_predictions(
            y_true, p, pos_label=pos_label, ax=ax, name=f"class {pos_label}{suffix}"
        )
        precision, recall, cuts = precision_recall_curve(y_true, p, pos_label=pos_label)
        marks = [(0.5, "threshold 0.5", "o")]
        if len(thresholds):
            marks.append((float(np.median(thresholds)), "tuned threshold", "*"))
        for value, text, marker in marks:
            i = min(np.searchsorted(cuts, value), len(cuts) - 1)
            ax.plot(
                recall[i], precision[i], marker, ms=12, mec="black", label=f"{text} ({value:.2f})"
            )
        ax.legend(fontsize=8)
        ax.set_title(f"precision-recall of class {pos_label}")
    ax.grid(alpha=0.3)
    return figure


def metric_vs_threshold(y_true, proba, classes, pos_label=None, thresholds=()):
    """F1 against the decision threshold.

    Binary: F1 of the positive class for every threshold on its probability,
    with 0.5 and the tuned thresholds (one per fold) marked. Multi-class: the
    one-vs-rest F1 of each class against a threshold on its own probability
    (the predictions use argmax; this shows how far each class is from its best cut).
    """
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    grid = np.linspace(0.0, 1.0, 201)
    figure = Figure(figsize=(4.8, 3.6))
    ax = figure.subplots()
    if pos_label is None:
        for i, label in enumerate(classes):
            ax.plot(
                grid,
                threshold_curve(proba[:, i], y_true == label, grid, "f1"),
                label=f"{label} vs rest",
            )
        ax.set_title("one-vs-rest F1 against threshold")
    else:
        p = proba[:, _column(classes, pos_label)]
        ax.plot(
            grid,
            threshold_curve(p, y_true == pos_label, grid, "f1"),
            color="C0",
            label=f"F1 of class {pos_label}",
        )
        ax.axvline(0.5, color="grey", ls="--", label="0.5 (argmax)")
        for k, value in enumerate(thresholds):
            ax.axvline(value, color="C3", lw=1, label="tuned (per fold)" if k == 0 else None)
        ax.set_title("F1 against the decision threshold")
    ax.set(xlabel="threshold on the predicted probability", ylabel="F1", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def reliability(y_true, proba, classes, pos_label=None, n_bins=10):
    """Reliability diagram: predicted probability against observed frequency.

    Binary: the positive class's probability. Multi-class: the top-label
    confidence against the accuracy of those predictions.
    """
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    figure = Figure(figsize=(4.8, 3.8))
    ax = figure.subplots()
    if pos_label is None:
        confidence = proba.max(axis=1)
        correct = np.asarray(classes)[proba.argmax(axis=1)] == y_true
        observed, predicted = calibration_curve(
            correct, confidence, n_bins=n_bins, strategy="uniform"
        )
        ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
        ax.plot(predicted, observed, "s-", label="top-label confidence")
        ax.set(xlabel="mean confidence", ylabel="accuracy")
        ax.legend(fontsize=8)
        ax.set_title("reliability (top label)")
    else:
        p = proba[:, _column(classes, pos_label)]
        CalibrationDisplay.from_predictions(
            y_true == pos_label, p, n_bins=n_bins, ax=ax, name=f"class {pos_label}"
        )
        # scikit-learn labels the axes with the boolean target ("Positive class: 1")
        ax.set(
            xlabel=f"predicted P({pos_label})",
            ylabel=f"observed fraction of class {pos_label}",
        )
        ax.set_title(f"reliability of P({pos_label})")
    ax.grid(alpha=0.3)
    return figure


def fold_scores(rows, metric):
    """Each row's score on every fold (dots) with its mean (bar), best at the top.

    Parameters
    ----------
    rows : sequence of (name, scores)
        ``scores`` holds one value per fold.
    metric : str
    """
    figure = Figure(figsize=(7, 0.35 * len(rows) + 1.2))
    ax = figure.subplots()
    positions = np.arange(len(rows))[::-1]
    for y, (_, scores) in zip(positions, rows, strict=True):
        scores = np.asarray(scores, dtype=float)
        ax.barh(y, scores.mean(), color="C0", alpha=0.25, height=0.7)
        ax.plot(scores, np.full(len(scores), y), "o", color="C0", ms=4)
    ax.set_yticks(positions, [name for name, _ in rows], fontsize=8)
    ax.set(xlabel=f"{metric} per fold (bar: mean)", title=f"{metric} on each test fold")
    ax.grid(axis="x", alpha=0.3)
    return figure


def gallery(items, title, columns=6, thumb=64):
    """Thumbnails of image files with a caption under each.

    Parameters
    ----------
    items : sequence of GalleryItem
        ``path`` and ``caption`` of each image.
    title : str
    columns : int, default=6
    thumb : int, default=64
        Thumbnail side in pixels.
    """
    from PIL import Image, ImageOps

    rows = max(1, -(-len(items) // columns))
    # room under each thumbnail for a three-line caption: captions of neighbours never overlap
    figure = Figure(figsize=(1.5 * columns, 2.0 * rows + 0.5))
    axes = np.atleast_1d(
        figure.subplots(rows, columns, gridspec_kw={"wspace": 0.25, "hspace": 0.5})
    ).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, item in zip(axes, items, strict=False):
        with Image.open(item.path) as image:
            picture = ImageOps.exif_transpose(image).convert("RGB")
            picture.thumbnail((thumb, thumb))
            ax.imshow(np.asarray(picture), interpolation="nearest")
        ax.set_axis_on()  # for the caption below the picture; no ticks, no frame
        ax.set_xlabel(item.caption, fontsize=7, linespacing=1.1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    figure.suptitle(title, fontsize=9)
    return figure
