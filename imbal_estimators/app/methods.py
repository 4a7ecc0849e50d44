"""The method table of ``compare``: every way of handling the imbalance, in one place.

A *method* is a registry name a user can type (``--methods focal,over``): a loss
of :data:`imbal_estimators.losses.registry.LOSSES`, ``weighted_ce`` (cross-entropy
with class weights), or a sampler name. Each method expands to one or more
:class:`Configuration` s, the parameter sets that ``compare`` cross-validates.
The decision rules (a tuned threshold for binary problems, a post-hoc logit
adjustment for multi-class ones) are not methods: ``compare`` scores every
configuration with them on the same fitted models.

The order of :data:`METHODS` is the order in which ``--budget`` keeps methods
(first kept longest). First the user's question, :data:`QUESTION`: plain
cross-entropy (with its tuned-threshold row), a focal row with a gamma x alpha
choice, weighted cross-entropy and over-sampling; together they answer "focal
or not, which gamma and alpha, or resampling". Then the strongest other
baselines of ``docs/quality.md`` (Balanced Softmax, class-balanced batches),
then the rest.

``balanced_softmax`` and ``logit_adjusted`` with ``tau=1`` are the same loss
(``logits + log prior``): the table has one row for both, ``balanced_softmax``,
and ``--methods logit_adjusted`` selects it (:data:`METHOD_ALIASES`).

A grid file (``--grid FILE``, JSON or YAML) replaces the table with your own
list of parameter sets; see :func:`load_grid`.
"""

import os
from dataclasses import dataclass, field

from ..imbalance.samplers import FEATURE_SAMPLERS
from ..imbalance.samplers import SAMPLERS as SAMPLER_REGISTRY
from ..io.reader import parse_json, read_bytes
from ..losses.registry import LOSSES

MAX_GRID_BYTES = 16 << 20  # a grid lists configurations: far less than this
BASELINE = "ce"  # the configuration every other is compared with

#: Sampler names a configuration may use: the registry's (the estimator takes them by
#: name). Those of FEATURE_SAMPLERS run on frozen backbone features only.
SAMPLERS = tuple(SAMPLER_REGISTRY)

#: estimator parameters of the imbalance handling; each is the CLI flag --name-with-dashes
IMBALANCE_PARAMS = (
    "loss",
    "gamma",
    "alpha",
    "beta",
    "sampler",
    "tau",
    "max_margin",
    "ldam_s",
    "label_smoothing",
    "drw_epoch",
)
#: estimator parameters of the decision rule
DECISION_PARAMS = ("threshold", "posthoc_tau", "calibrate", "pos_label")
#: the estimator parameters a configuration may set (the rest are shared settings)
CONFIGURATION_PARAMS = (*IMBALANCE_PARAMS, "threshold", "posthoc_tau", "calibrate")


@dataclass(frozen=True)
class Configuration:
    """One way of handling the imbalance: estimator parameters with a name.

    Parameters
    ----------
    name : str
        Unique within a comparison; rows are named after it.
    params : dict
        ``ImageImbalanceClassifier`` parameters (see :data:`CONFIGURATION_PARAMS`);
        ``sampler`` is a name of :data:`SAMPLERS` or None.
    method : str
        The registry name ``--methods`` selects it by.
    """

    name: str
    params: dict = field(default_factory=dict)
    method: str = BASELINE

    def __hash__(self):
        return hash(self.name)

    @property
    def sampler(self):
        return self.params.get("sampler")

    @property
    def needs_features(self):
        """Whether it synthesizes feature vectors (runs on frozen features only)."""
        return self.sampler in FEATURE_SAMPLERS

    @property
    def decides(self):
        """Whether it sets its own decision rule (threshold or post-hoc adjustment)."""
        return self.params.get("threshold") is not None or bool(self.params.get("posthoc_tau"))

    def estimator_params(self):
        """The ``ImageImbalanceClassifier`` parameters (a sampler stays its registry name)."""
        return {"loss": BASELINE, **self.params}


def make_sampler(name):
    """The estimator's ``sampler`` for a configuration's sampler name: the name itself,
    checked now against the registry; None stays None."""
    if name is not None and name not in SAMPLER_REGISTRY:
        raise ValueError(
            f"The 'sampler' of a configuration must be one of {list(SAMPLERS)} or None. "
            f"Got {name!r} instead."
        )
    return name


def _focal_grid():
    # the first row is the one a budget keeps longest: a gamma and an alpha, the user's question
    return tuple(
        Configuration(
            f"focal g={gamma:g}" + (f", alpha={alpha}" if alpha else ""),
            {"loss": "focal", "gamma": gamma, "alpha": alpha},
            "focal",
        )
        for gamma in (2.0, 1.0)
        for alpha in ("balanced", None, "effective")
    )


def _ldam_drw(max_epochs):
    # deferred re-weighting switches the effective-number weights on two thirds in
    drw = max(2, (2 * max_epochs) // 3 + 1)
    return (
        Configuration(
            "ldam+drw",
            {"loss": "ldam", "alpha": "effective", "beta": 0.99, "drw_epoch": drw},
            "ldam",
        ),
    )


def _losses(max_epochs):
    """One entry per loss of the registry (the test checks none is missing)."""
    return {
        "ce": (Configuration("ce", {"loss": "ce"}, "ce"),),
        "focal": _focal_grid(),
        "cb_focal": (
            Configuration("cb_focal", {"loss": "cb_focal", "gamma": 2.0, "beta": 0.99}, "cb_focal"),
        ),
        "ldam": _ldam_drw(max_epochs),
        "balanced_softmax": (
            Configuration("balanced_softmax", {"loss": "balanced_softmax"}, "balanced_softmax"),
        ),
    }


def _sampler_configuration(name):
    label = {"over": "ce + over-sampling", "under": "ce + under-sampling"}.get(name, f"ce + {name}")
    return Configuration(label, {"loss": "ce", "sampler": name}, name)


#: the user's question, kept longest by --budget: CE (and its tuned threshold), a focal
#: row with a gamma x alpha choice, weighted CE, over-sampling
QUESTION = ("ce", "focal", "weighted_ce", "over")

# kept longest first when --budget drops methods
PRIORITY = (
    *QUESTION,
    "balanced_softmax",
    "balanced_batches",
    "cb_focal",
    "ldam",
    "smote",
    "under",
    "borderline_smote",
    "adasyn",
)

#: names that select another method's row: the same loss under a second name
METHOD_ALIASES = {"logit_adjusted": "balanced_softmax"}  # logit_adjusted at tau=1


def method_table(max_epochs=10):
    """Method name -> its configurations, in :data:`PRIORITY` order.

    Parameters
    ----------
    max_epochs : int, default=10
        LDAM's deferred re-weighting starts two thirds into the epochs.
    """
    table = dict(_losses(max_epochs))
    missing = set(LOSSES) - set(table) - set(METHOD_ALIASES)
    if missing:  # a loss added to the registry must get its row here
        raise RuntimeError(f"compare has no configuration for the loss(es) {sorted(missing)}.")
    table["weighted_ce"] = (
        Configuration("ce, alpha=balanced", {"loss": "ce", "alpha": "balanced"}, "weighted_ce"),
    )
    for name in SAMPLERS:
        table[name] = (_sampler_configuration(name),)
    # the default comparison (PRIORITY) first; the registry's other samplers by --methods
    return {name: table[name] for name in METHODS}


#: every method, in budget order: PRIORITY, then the registry's other samplers
METHODS = (*PRIORITY, *(name for name in SAMPLERS if name not in PRIORITY))


def default_configurations(methods=None, *, max_epochs=10, features=False):
    """The configurations of ``methods`` (default: every method).

    Parameters
    ----------
    methods : sequence of str, optional
        Method names of :data:`METHODS` or configuration names; ``"ce"`` is
        always included (the recommendation's baseline).
    max_epochs : int, default=10
    features : bool, default=False
        Whether the fits run on frozen backbone features; without them the
        SMOTE family (which interpolates feature vectors) is left out.

    Returns
    -------
    tuple of Configuration
    """
    table = method_table(max_epochs)
    if methods is None:
        chosen = [c for name in METHODS for c in table[name]]
    else:
        by_name = {c.name: c for configs in table.values() for c in configs}
        chosen = []
        for name in methods:
            name = METHOD_ALIASES.get(name, name)
            if name in table:
                chosen += table[name]
            elif name in by_name:
                chosen.append(by_name[name])
            else:
                raise ValueError(
                    f"The 'methods' parameter of compare must name methods of {list(table)} "
                    f"or configurations of {list(by_name)}. Got {name!r} instead."
                )
    if not features:
        chosen = [c for c in chosen if not c.needs_features]
    return with_baseline(chosen)


def with_baseline(configurations):
    """``configurations`` without duplicates, plain cross-entropy first (added if absent)."""
    seen, out = set(), []
    for config in configurations:
        if config.name not in seen:
            seen.add(config.name)
            out.append(config)
    baseline = next((c for c in out if c.name == BASELINE), None)
    if baseline is None:
        baseline = Configuration(BASELINE, {"loss": "ce"}, "ce")
    elif baseline.params.get("loss", "ce") != "ce" or set(baseline.params) - {"loss"}:
        raise ValueError(
            f"The configuration named {BASELINE!r} is the baseline of the recommendation and "
            f"must be plain cross-entropy ({{'loss': 'ce'}}); got {baseline.params!r}."
        )
    return (baseline, *[c for c in out if c.name != BASELINE])


def configurations_from_dicts(entries):
    """Configurations from a list of parameter dicts (an optional ``name`` key each)."""
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(
            "A grid must be a non-empty list of parameter sets, e.g. "
            '[{"loss": "focal", "gamma": 2, "alpha": "balanced"}, {"sampler": "over"}].'
        )
    configs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"grid[{i}] must be a mapping of parameters; got {entry!r}.")
        params = {k: v for k, v in entry.items() if k != "name"}
        unknown = sorted(set(params) - set(CONFIGURATION_PARAMS))
        if unknown:
            raise ValueError(
                f"grid[{i}] has parameter(s) {unknown} that compare does not vary; a "
                f"configuration sets {list(CONFIGURATION_PARAMS)} (the shared settings such "
                "as max_epochs are options of compare)."
            )
        if params.get("sampler") is not None:
            make_sampler(params["sampler"])  # a clear error for an unknown name, now
        name = entry.get("name") or describe(params)
        method = params.get("sampler") or params.get("loss", BASELINE)
        configs.append(Configuration(str(name), params, method))
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"grid configuration names must be unique; repeated: {duplicates}.")
    return configs


def describe(params):
    """A short name for a parameter set, e.g. ``"focal gamma=2, alpha=balanced"``."""
    loss = params.get("loss", BASELINE)
    if set(params) <= {"loss"}:
        return loss
    rest = ", ".join(f"{k}={_short(v)}" for k, v in params.items() if k != "loss")
    return f"{loss} {rest}"


def _short(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_grid(path):
    """The configurations of a JSON or YAML grid file.

    The file holds a list of parameter sets, each a mapping with an optional
    ``name``::

        [{"name": "focal", "loss": "focal", "gamma": 2, "alpha": "balanced"},
         {"loss": "ce", "sampler": "over"}]

    YAML (``.yaml``/``.yml``) needs PyYAML.
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"The grid file {path!r} does not exist.")
    data = read_bytes(path, MAX_GRID_BYTES, what="grid file")  # no FIFO, no device, bounded
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ImportError(
                f"Reading the YAML grid {path!r} needs PyYAML: pip install pyyaml "
                "(or write the grid as JSON)."
            ) from None
        try:
            entries = yaml.safe_load(data.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"The grid file {path!r} is not valid YAML: {exc}") from None
    else:
        entries = parse_json(data, path, what="grid file")
    return configurations_from_dicts(entries)
