"""The ``imbal-estimators`` command (also ``python -m imbal_estimators``).

Thin: it parses arguments, loads folders and calls :mod:`~imbal_estimators.app.compare`,
:mod:`~imbal_estimators.app.report`, the estimator and its persistence. Errors the
user can fix are printed as one line that says what to do, with exit status 1
(2 for a wrong command line); ``--traceback`` shows the full traceback instead.
"""

import argparse
import os
import sys
from numbers import Integral

import numpy as np

from ..data.labels import plain_value
from ..decision.metrics import MONITOR_OPTIONS, REPORT_METRICS, SCORING_OPTIONS
from ..estimator.finetune import HEAD_INIT_OPTIONS
from ..imbalance.class_weights import ALPHA_STRATEGIES
from ..imbalance.samplers import SAMPLERS
from ..io.spreadsheet import safe_writer
from ..losses.registry import LOSSES
from ..models.backbones import (
    BACKBONES,
    WEIGHTS_FILE_SUFFIXES,
    WeightsDownloadError,
    check_backbone_name,
    check_weights_file,
    is_weights_file,
)
from ..utils.param_validation import Interval
from ..utils.startup import end_of_start
from .export_command import add_export_parser, cmd_export
from .methods import DECISION_PARAMS, IMBALANCE_PARAMS
from .network_options import (
    add_network_options,
    network_params,
    offline_message,
    search_working_directory,
    small_cnn_seconds,
)
from .option_types import compare_type, constrained, estimator_type

EXIT_DATA_ERROR = 1
EXIT_USAGE = 2
PROG = "imbal-estimators"

# The demo: small enough to finish in about 2-3 minutes on 2 CPU cores, and still learn
# (SmallCNN from scratch reaches F1 ~0.9 on the digits in 5 epochs; a torchvision backbone
# from scratch learns nothing in the epochs that budget allows).
DEMO_SETTINGS = dict(
    backbone="small_cnn",
    weights=None,
    image_size=32,
    max_epochs=5,
    lr=3e-3,
    batch_size=16,
)
DEMO_CV = 3
# every method would take ~5 minutes on 2 cores; the budget drops what does not fit (and says so)
DEMO_BUDGET = "3m"
DEMO_QUICK_METHODS = ["ce", "over", "balanced_softmax"]


class CLIError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exits with status 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


# -- arguments ---------------------------------------------------------------------------


def _add_cv_options(parser, scoring_help, scorings=SCORING_OPTIONS):
    """``--cv``, ``--scoring`` and ``--pos-label``, shared by ``compare`` and ``tune``."""
    parser.add_argument("--cv", type=compare_type("cv"), default=5, help="folds (default: 5)")
    parser.add_argument(
        "--scoring",
        choices=list(scorings),
        default="f1",
        help=f"{scoring_help} (default: f1)",
    )
    parser.add_argument(
        "--pos-label", help="positive class of a binary problem (default: the rarer class)"
    )


def _backbone(text):
    try:
        check_backbone_name(text)
    except (ValueError, ImportError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _alpha(text):
    """none, a strategy name, a float (the positive class's weight) or weights a,b,..."""
    if text.lower() == "none":
        return None
    if text in ALPHA_STRATEGIES:
        return text
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected none, one of {', '.join(ALPHA_STRATEGIES)}, a float or comma-separated "
            f"weights, got {text!r}"
        ) from None
    return weights[0] if len(weights) == 1 else weights


def _sampler(text):
    if text != "none" and text not in SAMPLERS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from none, {', '.join(SAMPLERS)})"
        )
    return text


def _listing(registry):
    return "; ".join(f"{name}: {entry.description}" for name, entry in registry.items())


def _add_finetune_options(group):
    """How a pretrained network is fine-tuned (estimator/finetune.py)."""
    group.add_argument(
        "--freeze-norm",
        choices=["auto", "yes", "no"],
        help="keep the body's BatchNorm statistics (eval mode) while fine-tuning: auto "
        "(default: yes for pretrained weights at --lr 1e-4 or less, else no)",
    )
    group.add_argument(
        "--head-lr-scale",
        type=estimator_type("head_lr_scale"),
        help="the new head's learning rate as a multiple of --lr when fine-tuning: auto "
        "(default: 10 for pretrained weights at --lr 1e-4 or less, else 1) or a number",
    )
    group.add_argument(
        "--head-init",
        choices=list(HEAD_INIT_OPTIONS),
        help="where a fine-tuned network's new head starts: probe (solved first on the frozen "
        "features, then the whole network fine-tuned: LP-FT), random, or auto (default: probe "
        "for pretrained weights at --lr 1e-4 or less, else random)",
    )


def _add_model_options(parser):
    group = parser.add_argument_group("model and training (default: the estimator's)")
    group.add_argument(
        "--backbone",
        type=_backbone,
        help="a torchvision classification model (resnet34, resnet18, efficientnet_b0, "
        "convnext_tiny, ...: torchvision.models.list_models()) or "
        + _listing(BACKBONES)
        + " (default: resnet34)",
    )
    group.add_argument(
        "--weights",
        help="none (random init), DEFAULT (ImageNet, downloaded once), a torchvision weights "
        f"name, or the path of a state-dict file ({', '.join(WEIGHTS_FILE_SUFFIXES)}) "
        "(default: DEFAULT)",
    )
    group.add_argument(
        "--image-size",
        type=estimator_type("image_size"),
        help="auto (default: the network's own resize and centre crop; a 224 px square for "
        "small_cnn and --module) or a square image side in px",
    )
    group.add_argument(
        "--max-epochs", type=estimator_type("max_epochs"), help="epochs per fit (default: 10)"
    )
    group.add_argument("--lr", type=estimator_type("lr"), help="learning rate (default: 1e-4)")
    group.add_argument(
        "--batch-size", type=estimator_type("batch_size"), help="batch size (default: 32)"
    )
    group.add_argument(
        "--monitor",
        choices=list(MONITOR_OPTIONS),
        help="validation metric that picks the epoch kept (default: balanced_accuracy)",
    )
    group.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="train only the new head, on cached backbone features (fast; for pretrained "
        "weights; needed by the samplers marked (features))",
    )
    _add_finetune_options(group)
    group.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument(
        "--random-state", type=estimator_type("random_state"), default=0, help="seed (default: 0)"
    )
    add_network_options(group)


def _add_on_bad_image_option(parser):
    from ..data.preflight import ON_BAD_IMAGE_OPTIONS

    parser.add_argument(
        "--on-bad-image",
        choices=list(ON_BAD_IMAGE_OPTIONS),
        help="files that cannot be decoded: raise (default) lists them all and stops; warn "
        "or skip trains on the other images",
    )


def _add_trusted_option(parser):
    parser.add_argument(
        "--trusted",
        action="store_true",
        help="load a model whose config.json names code outside the allow-list (your own "
        "network class, a function): only for models you saved yourself",
    )


def _add_compare_options(parser):
    from .methods import METHODS

    group = parser.add_argument_group("the comparison")
    group.add_argument(
        "--methods",
        type=_name_list,
        metavar="NAMES",
        help="comma-separated methods (or configuration names) to compare: "
        + ", ".join(METHODS)
        + " (default: all; ce is always included)",
    )
    group.add_argument(
        "--grid",
        metavar="FILE",
        help="a JSON or YAML file with your own list of parameter sets, e.g. "
        '[{"loss": "focal", "gamma": 2, "alpha": "balanced"}, {"sampler": "over"}]',
    )
    group.add_argument(
        "--repeats",
        type=compare_type("repeats"),
        default=1,
        help="repeats of the stratified k-fold split (repeated CV; default: 1)",
    )
    group.add_argument(
        "--budget",
        type=_budget,
        metavar="DURATION",
        help="shrink the plan to fit a time budget, e.g. 20m, 1h30m, 90s",
    )
    group.add_argument(
        "--n-jobs",
        type=compare_type("n_jobs"),
        default=1,
        help="parallel fits through joblib (-1: one per core; default: 1)",
    )
    group.add_argument(
        "--threads", type=compare_type("threads"), help="torch threads per fit (default: torch's)"
    )
    _add_stage_options(group)


def _add_stage_options(group):
    """Which stages compare runs: the screen, the fine-tuned top, the refit."""
    group.add_argument(
        "--top-k",
        type=compare_type("top_k"),
        default=3,
        help="configurations of the frozen-feature screen that stage 2 fine-tunes (default: 3)",
    )
    group.add_argument(
        "--no-screen", action="store_true", help="skip the frozen-feature screen (stage 1)"
    )
    group.add_argument(
        "--no-pretrained",
        action="store_true",
        help="the network (--module) has random weights: skip the frozen-feature screen",
    )
    group.add_argument(
        "--no-refit",
        action="store_true",
        help="do not refit the recommended configuration nor save OUT_DIR/model",
    )
    _add_ensemble_option(
        group,
        "the saved model averages K refits of the recommended "
        "configuration (seeds random_state, random_state+1, ...; default: 3; "
        "1: a single model)",
        default=3,
    )


def _add_resume_options(parser):
    group = parser.add_argument_group(
        "resuming (finished fits are kept in OUT_DIR/journal; the same command resumes)"
    )
    group.add_argument(
        "--restart",
        action="store_true",
        help="discard the journal of OUT_DIR (a run on other images or settings) and start afresh",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty OUT_DIR that holds no compare run (compare's own "
        "outputs there are replaced, other files stay)",
    )


def _add_ensemble_option(parser, help_text, default):
    parser.add_argument(
        "--ensemble", type=compare_type("ensemble"), default=default, metavar="K", help=help_text
    )


def _name_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _budget(text):
    from .plan import parse_budget

    try:
        parse_budget(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 20m, 1h30m or 90s, got {text!r}"
        ) from None
    return text


def _add_imbalance_options(parser, several=False):
    """Every loss, class-weight strategy and sampler the estimator takes, from the registries.

    With ``several`` (``tune``), ``--loss``, ``--alpha`` and ``--sampler`` take one value
    or more: one fixes the parameter, several are the choices searched.
    """
    title = "imbalance handling (default: the estimator's)"
    if several:
        title += "; for --loss, --alpha, --sampler one value fixes it, several are searched"
    group = parser.add_argument_group(title)
    nargs = "+" if several else None
    group.add_argument(
        "--loss", choices=list(LOSSES), nargs=nargs, help=_listing(LOSSES) + " (default: ce)"
    )
    group.add_argument(
        "--gamma", type=estimator_type("gamma"), help="focusing parameter of focal, cb_focal"
    )
    group.add_argument(
        "--alpha",
        type=_alpha,
        nargs=nargs,
        help="class weights: none; "
        + _listing(ALPHA_STRATEGIES)
        + "; a float in (0, 1), the weight of the positive class; or comma-separated "
        "weights, one per class in class order (default: none)",
    )
    group.add_argument("--beta", type=estimator_type("beta"), help="beta of effective, cb_focal")
    samplers = "; ".join(
        f"{name}: {entry.description}" + (" (features)" if entry.needs_features else "")
        for name, entry in SAMPLERS.items()
    )
    group.add_argument(
        "--sampler",
        type=_sampler,
        nargs=nargs,
        metavar="{none," + ",".join(SAMPLERS) + "}",
        help=f"resampling of the training images every epoch: none; {samplers}. Those marked "
        "(features) run on backbone features and need --freeze-backbone (default: none)",
    )
    group.add_argument(
        "--tau",
        type=estimator_type("tau"),
        help="strength of logit_adjusted (default: 1)",
    )
    group.add_argument(
        "--max-margin", type=estimator_type("max_margin"), help="ldam's largest margin"
    )
    group.add_argument("--ldam-s", type=estimator_type("ldam_s"), help="ldam's logit scale")
    group.add_argument(
        "--label-smoothing",
        type=estimator_type("label_smoothing"),
        help="label smoothing of ce, ldam, logit_adjusted, balanced_softmax (default: 0)",
    )
    group.add_argument(
        "--drw-epoch",
        type=estimator_type("drw_epoch"),
        help="deferred re-weighting: alpha's weights switch on at this epoch (needs --alpha)",
    )


def _add_decision_options(parser):
    group = parser.add_argument_group("decision (default: argmax)")
    group.add_argument(
        "--threshold",
        type=estimator_type("threshold"),
        help="binary: auto (tuned on the internal validation split) or a float in [0, 1] on "
        "the positive class's probability",
    )
    group.add_argument(
        "--posthoc-tau",
        type=estimator_type("posthoc_tau"),
        help="post-hoc logit adjustment: argmax(log p - tau * log prior)",
    )
    group.add_argument(
        "--calibrate", action="store_true", help="temperature scaling on the validation split"
    )
    group.add_argument(
        "--pos-label", help="positive class of a binary problem (default: the rarer class)"
    )


def build_parser():
    """The parser of every command (built each call: the option types read the declared
    constraints as they are now)."""
    parser = _Parser(
        prog=PROG,
        description="Imbalanced image classification: compare losses, class weights, "
        "resampling and decision thresholds on your image folder, then fit and predict.",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback on errors"
    )
    import imbal_estimators

    version = f"{PROG} {imbal_estimators.__version__}"
    parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    _add_demo_parser(commands)
    _add_compare_parser(commands)
    _add_fit_parser(commands)
    _add_predict_parser(commands)
    _add_tune_parser(commands)
    _add_report_parser(commands)
    add_export_parser(commands, _add_trusted_option)
    return parser


def _add_demo_parser(commands):
    demo = commands.add_parser(
        "demo",
        help="build the embedded demo folder and run compare on it (a few minutes on a CPU)",
        description="Write the embedded imbalanced demo folder (600 vs 120 handwritten digits "
        "that ship with scikit-learn) and run compare on it with small, fast settings "
        f"({DEMO_CV}-fold CV, imbal_estimators.SmallCNN from scratch, "
        f"{DEMO_SETTINGS['image_size']} px, {DEMO_SETTINGS['max_epochs']} epochs, "
        f"--budget {DEMO_BUDGET}).",
    )
    demo.add_argument("--data", default="demo_data", help="where to write the demo folder")
    demo.add_argument("--out", default="demo_report", help="where to write the report")
    demo.add_argument(
        "--quick", action="store_true", help="a smoke run in seconds (tiny data, 1 epoch)"
    )


def _add_compare_parser(commands):
    compare = commands.add_parser(
        "compare",
        help="cross-validate the loss x alpha x sampler x threshold grid; write a report",
        description="Stratified k-fold cross-validation of every imbalance method (CE, "
        "weighted CE, focal gamma x alpha, class-balanced focal, LDAM+DRW, logit-adjusted, "
        "Balanced Softmax, over-/under-sampling, class-balanced batches; the SMOTE family on "
        "frozen features), each with a tuned decision threshold (binary) or a post-hoc logit "
        "adjustment (multi-class). Prints the plan and its estimated time first; with a "
        "pretrained backbone, screens every method on frozen features and fine-tunes the top "
        "ones. Recommends only what a paired test supports, refits it on all the images and "
        "saves it to OUT_DIR/model. Writes results.csv, fold_scores.csv, report.md and "
        "report.html to --out.",
    )
    compare.add_argument("data_dir", metavar="DATA_DIR", help="ImageFolder: one folder per class")
    compare.add_argument("--out", required=True, metavar="OUT_DIR", help="output directory")
    _add_resume_options(compare)
    # compare ranks by a column of its table (imbal_estimators.app.compare.SCORING_OPTIONS)
    ranked = [name for name in SCORING_OPTIONS if name in REPORT_METRICS]
    _add_cv_options(compare, "ranks the configurations; multi-class F1 is macro F1", ranked)
    _add_compare_options(compare)
    _add_model_options(compare)
    _add_on_bad_image_option(compare)


def _add_fit_parser(commands):
    fit = commands.add_parser(
        "fit",
        help="fit one model on a folder and save it",
        description="Fit ImageImbalanceClassifier on an ImageFolder and save it to MODEL_DIR.",
    )
    fit.add_argument("data_dir", metavar="DATA_DIR", help="ImageFolder: one folder per class")
    fit.add_argument("--out", required=True, metavar="MODEL_DIR", help="where to save the model")
    _add_imbalance_options(fit)
    _add_decision_options(fit)
    _add_model_options(fit)
    _add_on_bad_image_option(fit)
    _add_ensemble_option(
        fit,
        "fit K models with seeds random_state, random_state+1, ... and save their "
        "SeedEnsembleClassifier (probabilities averaged; default: 1, one model)",
        default=1,
    )


def _add_predict_parser(commands):
    predict = commands.add_parser(
        "predict",
        help="predict images with a saved model",
        description="Predict image files, or every image under directories, with the model "
        "saved in MODEL_DIR. Writes CSV: path, label, one probability column per class.",
    )
    predict.add_argument("model_dir", metavar="MODEL_DIR", help="a model saved by fit or compare")
    predict.add_argument(
        "inputs", metavar="PATHS_OR_DIR", nargs="+", help="image files, or folders to search"
    )
    predict.add_argument("--output", metavar="CSV", help="CSV file to write (default: stdout)")
    _add_trusted_option(predict)


def _add_tune_parser(commands):
    tune = commands.add_parser(
        "tune",
        help="Optuna search over loss, gamma, alpha and sampler",
        description="Search the imbalance parameters with ImbalanceSearchCV (Optuna); a "
        "--storage URL and --study name make the study persistent and shareable by workers.",
    )
    tune.add_argument("data_dir", metavar="DATA_DIR", help="ImageFolder: one folder per class")
    # ImbalanceSearchCV's n_trials, declared in a module that imports Optuna (tune's extra)
    trials = constrained([Interval(Integral, 1, None, closed="left")])
    tune.add_argument("--trials", type=trials, required=True, help="number of trials")
    _add_cv_options(tune, "the score the search maximizes")
    tune.add_argument("--storage", help="Optuna storage URL, e.g. sqlite:///study.db")
    tune.add_argument("--study", help="study name (to resume or share a study)")
    tune.add_argument("--out", metavar="MODEL_DIR", help="save the refitted best model here")
    _add_imbalance_options(tune, several=True)
    _add_model_options(tune)
    _add_on_bad_image_option(tune)


def _add_report_parser(commands):
    report = commands.add_parser(
        "report",
        help="evaluate a saved model on a labelled folder; write a report",
        description="Predict a labelled ImageFolder with the model in MODEL_DIR and write "
        "report.md and report.html (scores, confusion matrix, curves, per-class figures).",
    )
    report.add_argument("model_dir", metavar="MODEL_DIR", help="a model saved by fit or compare")
    report.add_argument(
        "data_dir", metavar="DATA_DIR", help="labelled ImageFolder: one folder per class"
    )
    report.add_argument("--out", required=True, metavar="OUT_DIR", help="where to write the report")
    _add_trusted_option(report)


def _weights(text):
    if text is None:
        return None, False
    if text.lower() == "none":
        return None, True
    if is_weights_file(text):
        try:
            check_weights_file(text, what="--weights file")
        except (FileNotFoundError, ValueError) as exc:
            raise CLIError(f"{exc} Give none, DEFAULT or a weights file.") from None
    return text, True


def estimator_params(args, **base):
    """The ImageImbalanceClassifier parameters given on the command line, over ``base``."""
    params = dict(base)
    for name in ("backbone", "image_size", "max_epochs", "lr", "batch_size", "monitor", "device"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    params["random_state"] = args.random_state
    weights, given = _weights(args.weights)
    if given:
        params["weights"] = weights
    if args.freeze_backbone:
        params["freeze_backbone"] = True
    if getattr(args, "head_init", None):
        params["head_init"] = args.head_init
    if getattr(args, "head_lr_scale", None) is not None:
        params["head_lr_scale"] = args.head_lr_scale
    if getattr(args, "freeze_norm", None):
        params["freeze_norm"] = {"yes": True, "no": False}.get(args.freeze_norm, "auto")
    if getattr(args, "on_bad_image", None):
        params["on_bad_image"] = args.on_bad_image
    return network_params(args, params)


def imbalance_params(args, labels=None):
    """The imbalance and decision parameters given on the command line (``fit``).

    Each option ``--foo-bar`` is the estimator parameter ``foo_bar`` (the loss's
    ``--tau``, ``--max-margin`` and ``--ldam-s`` are ``criterion__tau``,
    ``criterion__max_margin`` and ``criterion__s``); an option not given leaves the
    estimator's default.
    """
    params = {}
    for name in (*IMBALANCE_PARAMS, *DECISION_PARAMS):
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        if name == "sampler":
            value = None if value == "none" else value
        if name == "pos_label" and labels is not None:
            value = _match_label(value, labels)
        params[name] = value
    from ..estimator.loss_params import criterion_spelling

    return criterion_spelling(params)


# -- outputs -----------------------------------------------------------------------------

MODEL_FILES = ("config.json", "model.safetensors")


def check_output(path, option, kind="directory"):
    """Fail now, before any work, when ``path`` cannot be written.

    ``kind`` is ``"directory"`` (a report), ``"model"`` (a directory that
    ``clf.save`` replaces: empty or a saved model, in a writable folder) or
    ``"file"``. Nothing is created.
    """
    shown = path
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if os.path.lexists(path):
        if kind == "file" and os.path.isdir(path):
            raise CLIError(f"{option} {shown!r} is a directory; give the name of a file.")
        if kind != "file" and not os.path.isdir(path):
            raise CLIError(f"{option} {shown!r} is a file, not a directory.")
        if kind == "model":
            foreign = sorted(set(os.listdir(path)) - set(MODEL_FILES))
            if foreign:
                raise CLIError(
                    f"{option} {shown!r} holds other files ({', '.join(foreign[:3])}); save "
                    "writes a model directory of its own: give a new or empty directory."
                )
        writable = parent if kind in ("model", "file") else path
        if not os.access(writable, os.W_OK | os.X_OK):
            raise CLIError(f"{option} {shown!r} cannot be written: {writable!r} is not writable.")
        return
    ancestor = parent
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise CLIError(
            f"{option} {shown!r} cannot be created: {ancestor!r} is a file, not a directory."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {shown!r} cannot be created: {ancestor!r} is not writable.")


def check_apart(data_dir, out_dir, option="--out"):
    """Refuse ``out_dir`` inside ``data_dir`` or the reverse, before any work."""
    from ..data.folders import check_outside

    try:
        check_outside(data_dir, out_dir, option)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


# -- data --------------------------------------------------------------------------------


def load_folder(data_dir):
    """Paths and labels of an ImageFolder, or a one-line error that says what to do."""
    from ..data.images import load_image_folder

    if not os.path.exists(data_dir):
        raise CLIError(
            f"{data_dir!r} does not exist; give an image folder with one sub-folder per class."
        )
    if not os.path.isdir(data_dir):
        raise CLIError(
            f"{data_dir!r} is not a directory; give an image folder with one sub-folder per class."
        )
    try:
        paths, labels = load_image_folder(data_dir)
    except FileNotFoundError as exc:
        raise CLIError(
            f"{data_dir!r} is not an image folder ({exc}); put the images of each "
            "class in their own sub-folder."
        ) from None
    if len(np.unique(labels)) < 2:
        raise CLIError(f"{data_dir!r} has a single class folder; a classifier needs at least two.")
    return paths, labels


def image_files(inputs):
    """The image files named by ``inputs``: files as given, directories searched recursively."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(folder, name)
                for folder, _, names in os.walk(item)
                for name in names
                if name.lower().endswith(IMG_EXTENSIONS)
            )
            if not found:
                raise CLIError(f"{item!r} holds no image files ({', '.join(IMG_EXTENSIONS)}).")
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise CLIError(f"{item!r} does not exist; give image files or directories of images.")
    return files


def _load_model(model_dir, trusted=False):
    import imbal_estimators

    if not os.path.isdir(model_dir):
        raise CLIError(
            f"model directory {model_dir!r} does not exist; create one with "
            f"'{PROG} fit DATA_DIR --out MODEL_DIR'."
        )
    load = getattr(imbal_estimators, "load", None)
    if load is None:
        raise CLIError("this version of imbal_estimators cannot load saved models yet.")
    from ..io.references import UntrustedReferenceError

    search_working_directory()  # a --module network saved from this folder
    try:
        return load(model_dir, trusted=trusted)
    except UntrustedReferenceError as exc:  # its advice in the command line's words
        raise CLIError(str(exc).replace("pass trusted=True", "pass --trusted")) from None


# -- commands ----------------------------------------------------------------------------


def run_compare(data_dir, out_dir, *, cv, scoring, params, pos_label=None, title=None, **options):
    """Compare on ``data_dir``, write the results and the report to ``out_dir``, save the model.

    ``options`` go to :func:`~imbal_estimators.app.compare.compare` (methods, grid,
    repeats, budget, n_jobs, threads, top_k, screen, refit); ``restart`` and
    ``overwrite`` to :func:`~imbal_estimators.app.session.compare_journal`:
    finished fits go to ``out_dir/journal`` at once, and the same call resumes.
    """
    import time

    # a --budget counts from the start of the process: the interpreter and its imports too
    started = time.perf_counter() - process_age()
    from .compare import compare
    from .journal import JournalMismatch
    from .session import refused_run

    journal = _compare_journal(data_dir, out_dir, options)
    paths, labels, pos_label = _compare_data(data_dir, cv, params, pos_label, options)
    written = {}

    def write_outputs(result):  # under compare's progress bar: the budget counts it
        written.update(_write_compare_outputs(result, data_dir, out_dir, title))

    try:
        result = compare(
            paths,
            labels,
            cv=cv,
            scoring=scoring,
            pos_label=pos_label,
            estimator_params=params,
            random_state=params.get("random_state", 0),
            log=lambda line: print(line, flush=True),
            journal=journal,
            finish=write_outputs,
            started=started,
            **options,
        )
    except JournalMismatch as exc:
        raise CLIError(refused_run(out_dir, exc)) from None
    except WeightsDownloadError as exc:  # the way out on this CPU, with its time
        exc.small_cnn_seconds = small_cnn_seconds(
            paths,
            labels,
            cv=cv,
            methods=options.get("methods"),
            ensemble=options.get("ensemble", 3),
        )
        raise
    _print_summary(result, out_dir, written["html_path"], written["model_dir"])
    return result


def _compare_journal(data_dir, out_dir, options):
    """The journal in ``out_dir``, checked before any work (``restart`` and ``overwrite``
    taken out of ``options``)."""
    from .session import OutputRefused, compare_journal

    check_output(out_dir, "--out")
    check_apart(data_dir, out_dir)
    fresh = {name: options.pop(name, False) for name in ("restart", "overwrite")}
    try:
        return compare_journal(out_dir, **fresh)
    except OutputRefused as exc:
        raise CLIError(str(exc)) from None


def _compare_data(data_dir, cv, params, pos_label, options):
    """The folder's paths and labels (undecodable images left out if asked), ``pos_label``
    as one of the labels, and a ``grid`` file of ``options`` loaded (a bad file fails now);
    prints the images per class."""
    from .compare import check_folds
    from .methods import load_grid

    paths, labels = load_folder(data_dir)
    if params.get("on_bad_image", "raise") != "raise":
        paths, labels = drop_bad_images(paths, labels, params)
    check_folds(labels, cv)
    if pos_label is not None:
        pos_label = _match_label(pos_label, labels)
    if options.get("grid") is not None:
        options["configurations"] = load_grid(options.pop("grid"))
    classes, counts = np.unique(labels, return_counts=True)
    print(
        f"{data_dir}: {len(paths)} images, "
        + ", ".join(f"{c}: {n}" for c, n in zip(classes, counts, strict=True)),
        flush=True,
    )
    return paths, labels, pos_label


def _write_compare_outputs(result, data_dir, out_dir, title=None):
    """Save compare's model to ``out_dir/model`` and write results.csv, fold_scores.csv and
    the report there; returns ``{"model_dir": ..., "html_path": ...}``."""
    from .report import comparison_blocks, write_report

    os.makedirs(out_dir, exist_ok=True)
    model_dir = None
    if result.best_estimator_ is not None:
        model_dir = os.path.join(out_dir, "model")
        result.best_estimator_.save(model_dir)
    result.write_results_csv(os.path.join(out_dir, "results.csv"), data_dir)
    result.write_fold_scores_csv(os.path.join(out_dir, "fold_scores.csv"))
    blocks = comparison_blocks(result, data_dir, model_dir)
    _, html_path = write_report(blocks, out_dir, title or f"compare: {data_dir}")
    return {"model_dir": model_dir, "html_path": html_path}


def process_age():
    """Seconds since this process started (from ``/proc`` on Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # starttime
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def drop_bad_images(paths, labels, params):
    """``--on-bad-image skip|warn`` for compare: the files that cannot be decoded leave
    the data before the folds are drawn (the decode fills the cache the fits use)."""
    from ..data.images import ImageLoader, find_bad_images, format_bad_files
    from ..estimator.classifier import ImageImbalanceClassifier

    probe = ImageImbalanceClassifier(**params)
    from ..estimator.geometry import estimator_geometry

    problems = find_bad_images(paths, ImageLoader(estimator_geometry(probe), probe.cache))
    if not problems:
        return paths, labels
    header = (
        f"Skipping {len(problems)} of {len(paths)} image file(s) that cannot be used "
        f"(--on-bad-image {params['on_bad_image']}):"
    )
    if params["on_bad_image"] == "warn":
        print(format_bad_files(problems, paths, "images", header=header), file=sys.stderr)
    else:
        print(f"Skipped {len(problems)} unusable image file(s).", file=sys.stderr)
    keep = np.setdiff1d(np.arange(len(paths)), [index for index, _ in problems])
    return paths[keep], labels[keep]


def _match_label(text, labels):
    for label in np.unique(labels):
        if str(label) == text:
            return label
    raise CLIError(
        f"--pos-label {text!r} is not a class; classes: {[str(c) for c in np.unique(labels)]}."
    )


def _print_summary(result, out_dir, html_path, model_dir=None):
    from .moved import what_moved
    from .report import recommendation

    metric = result.scoring
    print(f"\n{'rank':>4}  {'configuration':45s} {metric + ' (mean ± sd)':>22s}")
    recommended = result.recommended
    shown = list(result.rows[:5])
    if not any(row is recommended for row in shown):  # the answer is always in the table
        shown.append(recommended)
    ranks = {id(row): rank for rank, row in enumerate(result.rows, start=1)}
    for row in shown:
        rank = ranks.get(id(row))  # None: the frozen screen's row won (recommend.StageContest)
        if (rank is None or rank > 6) and row is recommended:
            print("      ...")
        mark = "  <- recommended" if row is recommended else ""
        name = row.name if rank else f"{row.name} (frozen, stage 1)"
        rank_text = "-" if rank is None else str(rank)
        print(f"{rank_text:>4}  {name:45s} {row.mean(metric):>13.3f} ± {row.std(metric):.3f}{mark}")
    if len(result.rows) > len(shown):
        more = len(result.rows) - len(shown)
        print(f"      ... {more} more in {os.path.join(out_dir, 'results.csv')}")
    print()
    moved = what_moved(result)
    if moved:
        print(moved + "\n")
    if result.pos_label is not None:
        print(f"Positive class: {plain_value(result.pos_label)!r}")
    for text in recommendation(result):
        print(text.replace("**", ""))
    if model_dir is not None:
        refits = result.plan.refits
        members = f", an ensemble of {refits} fits" if refits > 1 else ""
        rule = result.best_estimator_.decision_rule()
        print(
            f"\nSaved the recommended model ({result.recommended.name}{members}; decides by "
            f"{rule}) to {model_dir}"
        )
    print(f"Report: {html_path}")


def cmd_demo(args):
    import torch

    # SmallCNN's layers are too small for two threads to pay off, and one thread is immune
    # to the slow-down of spinning threads on a busy machine (5x measured on 2 shared cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(args)
    finally:  # main() may be called in a longer-lived process (tests, notebooks)
        torch.set_num_threads(threads)


def _run_demo(args):
    from ..data.demo import make_demo_image_folder

    check_output(args.out, "--out")
    check_apart(args.data, args.out)
    settings = dict(DEMO_SETTINGS, verbose=0, random_state=0)
    sizes = dict(n_majority=600, n_minority=120)
    options = dict(budget=DEMO_BUDGET)
    if args.quick:
        settings.update(max_epochs=1, image_size=16)
        sizes = dict(n_majority=60, n_minority=15)
        options = dict(methods=DEMO_QUICK_METHODS)
    try:
        data = make_demo_image_folder(args.data, **sizes)
    except ValueError as exc:
        raise CLIError(f"{exc} (or pass --data NEW_DIR)") from None
    run_compare(
        data,
        args.out,
        cv=DEMO_CV,
        scoring="f1",
        params=settings,
        title="imbal-estimators demo: 600 vs 120 handwritten digits"
        if not args.quick
        else "imbal-estimators demo (quick)",
        **options,
    )
    return 0


def cmd_compare(args):
    params = estimator_params(args, verbose=0)
    run_compare(
        args.data_dir,
        args.out,
        cv=args.cv,
        scoring=args.scoring,
        params=params,
        pos_label=args.pos_label,
        methods=args.methods,
        grid=args.grid,
        repeats=args.repeats,
        budget=args.budget,
        n_jobs=args.n_jobs,
        threads=args.threads,
        top_k=args.top_k,
        screen=False if args.no_screen else "auto",
        pretrained=False if args.no_pretrained else "auto",
        refit=not args.no_refit,
        ensemble=args.ensemble,
        restart=args.restart,
        overwrite=args.overwrite,
    )
    return 0


def cmd_fit(args):
    from ..estimator.classifier import ImageImbalanceClassifier

    check_output(args.out, "--out", kind="model")
    check_apart(args.data_dir, args.out)
    paths, labels = load_folder(args.data_dir)
    clf = ImageImbalanceClassifier(**estimator_params(args), **imbalance_params(args, labels))
    if args.ensemble > 1:
        from ..estimator.ensemble import SeedEnsembleClassifier

        clf = SeedEnsembleClassifier(clf, n_members=args.ensemble)
    clf.fit(paths, labels)
    clf.save(args.out)
    members = getattr(clf, "members_", [clf])
    kept = ", ".join(_kept(m) for m in members)
    what = "the model" if len(members) == 1 else f"an ensemble of {len(members)} models"
    print(
        f"Saved {what} (classes {clf.classes_.tolist()}, kept {kept}; decides by "
        f"{clf.decision_rule()}) to {args.out}",
        file=sys.stderr,
    )
    return 0


def _kept(clf):
    """What ``clf`` kept: its epoch, or for a frozen head solved along the penalty path
    (its epochs are penalties, not passes over the data) the penalty."""
    epoch = clf.best_epoch_
    try:
        penalty = clf.history[epoch - 1, "head_penalty"]
    except (KeyError, IndexError):
        return f"epoch {epoch}"
    return f"head penalty {penalty:.3g} (point {epoch} of {len(clf.history)} of its path)"


def cmd_predict(args):
    if args.output:
        check_output(args.output, "--output", kind="file")
    clf = _load_model(args.model_dir, trusted=args.trusted)
    files = image_files(args.inputs)
    proba = predict_proba_with_progress(clf, files)
    labels = clf.decide(proba)  # the model's own rule: its tuned threshold, if it has one
    rule = clf.decision_rule()
    print(f"Decision rule: {rule} (the label column applies it)", file=sys.stderr)
    # the rule travels with the labels: a label at P=0.55 is not a mystery later
    header = ["path", "label", *[f"proba_{c}" for c in clf.classes_], "decision_rule"]
    rows = [
        [path, label, *[f"{p:.6f}" for p in row], rule]
        for path, label, row in zip(files, labels, proba, strict=True)
    ]
    if args.output:
        with open(args.output, "w", newline="") as file:
            _write_csv(file, header, rows)
        print(f"Wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    else:
        _write_csv(sys.stdout, header, rows)
    return 0


def predict_proba_with_progress(clf, files, chunk=256):
    """``clf.predict_proba(files)`` in chunks, with a progress bar."""
    from tqdm.auto import tqdm

    files = list(files)
    proba = [
        clf.predict_proba(files[start : start + chunk])
        for start in tqdm(range(0, len(files), chunk), desc="predict", unit="chunk")
    ]
    return np.concatenate(proba)


def _write_csv(file, header, rows):
    writer = safe_writer(file)  # a class named "=HYPERLINK(...)" is not evaluated
    writer.writerow(header)
    writer.writerows(rows)


def cmd_report(args):
    from .report import model_blocks, write_report

    check_output(args.out, "--out")
    check_apart(args.data_dir, args.out)
    clf = _load_model(args.model_dir, trusted=args.trusted)
    paths, labels = load_folder(args.data_dir)
    unknown = sorted(set(np.unique(labels).tolist()) - set(clf.classes_.tolist()), key=str)
    if unknown:
        raise CLIError(
            f"{args.data_dir!r} has class folder(s) {unknown} that the model does not "
            f"know; its classes are {clf.classes_.tolist()}."
        )
    proba = predict_proba_with_progress(clf, paths)
    print(f"Decision rule: {clf.decision_rule()}", file=sys.stderr)
    blocks = model_blocks(clf, paths, labels, args.data_dir, proba=proba)
    _, html_path = write_report(blocks, args.out, f"report: {args.model_dir} on {args.data_dir}")
    print(f"Report: {html_path}", file=sys.stderr)
    return 0


def cmd_tune(args):
    import imbal_estimators

    search_cls = getattr(imbal_estimators, "ImbalanceSearchCV", None)
    if search_cls is None:
        raise CLIError("this version of imbal_estimators has no ImbalanceSearchCV yet.")
    from ..decision.metrics import Scorer
    from ..estimator.classifier import ImageImbalanceClassifier
    from ..estimator.loss_params import criterion_spelling
    from .compare import check_folds

    if args.out:
        check_output(args.out, "--out", kind="model")
    check_apart(args.data_dir, args.out)
    paths, labels = load_folder(args.data_dir)
    check_folds(labels, args.cv)
    pos_label = None  # then the estimator's pos_label_: the rarer class of each training part
    if args.pos_label is not None:
        pos_label = _match_label(args.pos_label, labels)
    space, fixed = tune_search_space(args)
    if not space:
        raise CLIError(
            "the options fix every parameter that tune searches; give several values to "
            "--loss, --alpha or --sampler, or leave one of them out."
        )
    if pos_label is not None:  # the estimator's monitor, threshold and float alpha too
        fixed["pos_label"] = pos_label
    tuned_fixed = criterion_spelling(fixed)
    search = search_cls(
        ImageImbalanceClassifier(**estimator_params(args, verbose=0), **tuned_fixed),
        space,
        n_trials=args.trials,
        cv=args.cv,
        scoring=Scorer(args.scoring, pos_label),
        storage=args.storage,
        study_name=args.study,
        random_state=args.random_state,
    )
    print(_search_line(space, search.estimator, args.trials), flush=True)
    search.fit(paths, labels)
    print(f"best {args.scoring}: {search.best_score_:.4f} with {search.best_params_}")
    if args.out:
        search.best_estimator_.save(args.out)
        print(f"Saved the refitted best model to {args.out}", file=sys.stderr)
    return 0


def tune_search_space(args):
    """``tune``'s search space and fixed parameters from the imbalance options.

    The default search space, where an option given once fixes its parameter
    (it leaves the space) and an option given several values searches those.
    """
    from optuna.distributions import CategoricalDistribution

    from ..search.space import DEFAULT_SEARCH_SPACE

    space, fixed = dict(DEFAULT_SEARCH_SPACE), {}
    for name in IMBALANCE_PARAMS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if isinstance(value, list) and name in ("loss", "alpha", "sampler"):
            choices = list(dict.fromkeys(map(_storable, value)))
            if len(choices) > 1:
                space[name] = CategoricalDistribution(choices)
                continue
            value = value[0]
        space.pop(name, None)
        fixed[name] = None if name == "sampler" and value == "none" else value
    for name in list(space):  # a model option given (--lr) fixes it too
        if name not in IMBALANCE_PARAMS and getattr(args, name, None) is not None:
            space.pop(name)
    return space, fixed


def _search_line(space, estimator, trials):
    """What ``tune`` searches and what it keeps fixed, for the plan it prints."""
    from ..search.space import DEFAULT_SEARCH_SPACE

    params = estimator.get_params(deep=False)
    fixed = [
        f"{name}={plain_value(params[name])!r}"
        for name in DEFAULT_SEARCH_SPACE
        if name not in space and name in params
    ]
    line = f"Searching {', '.join(space)} in {trials} trial(s)"
    return line + (f"; fixed: {', '.join(fixed)}" if fixed else "")


def _storable(value):
    if isinstance(value, list):
        raise CLIError(
            f"--alpha weights {value} cannot be one of several searched values; give them alone."
        )
    return value


COMMANDS = {
    "demo": cmd_demo,
    "compare": cmd_compare,
    "fit": cmd_fit,
    "predict": cmd_predict,
    "tune": cmd_tune,
    "report": cmd_report,
    "export": lambda args: cmd_export(args, _load_model),
}


def _one_line(exc):
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = " ".join(lines[:2])
    if len(lines) > 2:
        text += f" (and {len(lines) - 2} more)"
    return text


def main(argv=None):
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    # figures are only written to files: no GUI backend, even where a display exists
    os.environ.setdefault("MPLBACKEND", "Agg")
    from ..training.interrupt import stop_on_signals

    end_of_start()  # from here on Ctrl-C is a KeyboardInterrupt, handled below
    try:
        with stop_on_signals():  # the first Ctrl-C or SIGTERM stops; skorch does not swallow it
            return COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:
        from .session import stop_hint

        # 130 for Ctrl-C, 143 for SIGTERM: what a shell reports for a process the signal ended
        hint = stop_hint(args)
        print(f"{PROG} {args.command}: interrupted{hint and '; ' + hint}", file=sys.stderr)
        status = getattr(exc, "exit_status", 130)
        if argv is None:  # the command itself: tearing torch down takes seconds on a busy machine
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)  # everything finished is on disk (fsynced) already
        return status
    except Exception as exc:
        if args.traceback:
            raise
        from ..data.images import ImageFileError
        from ..training.divergence import TrainingDivergedError

        if isinstance(exc, WeightsDownloadError):
            print(offline_message(f"{PROG} {args.command}", exc), file=sys.stderr)
        elif isinstance(exc, ImageFileError):  # every bad file and the hint, line by line
            print(f"{PROG} {args.command}: error: {str(exc).strip()}", file=sys.stderr)
            if args.command in ("fit", "compare", "tune"):
                print("(on the command line: --on-bad-image skip or warn)", file=sys.stderr)
        elif isinstance(exc, CLIError | OSError | ValueError | TypeError | ImportError) or (
            isinstance(exc, TrainingDivergedError)  # its message is the advice (lr, ...)
        ):
            print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        else:
            print(
                f"{PROG} {args.command}: unexpected error: {type(exc).__name__}: "
                f"{_one_line(exc)} (rerun with --traceback to see where)",
                file=sys.stderr,
            )
        return EXIT_DATA_ERROR


if __name__ == "__main__":
    sys.exit(main())
