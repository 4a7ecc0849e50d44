"""Which imbalance corrections stack: conflicts are errors, double corrections warn.

Each correction below shifts the decision towards rare classes; two of them on
the same axis correct twice and over-predict the rare classes:

=================================================  ============================================
combination                                        what happens
=================================================  ============================================
``logit_adjusted`` / ``balanced_softmax`` + alpha  prior removed by the loss, then the classes
                                                   re-weighted again: **double** (warns)
``cb_focal`` + alpha                               two class weightings multiplied: **double**
                                                   (warns)
``cb_focal`` + a sampler                           weights from the raw counts on rows the
                                                   sampler already rebalanced: **double** (warns)
``logit_adjusted`` / ``balanced_softmax`` +        logits already prior-free, adjusted again at
``posthoc_tau``                                    predict: **double** (warns)
``logit_adjusted`` / ``balanced_softmax`` + a      not double: their prior is the counts the loss
sampler                                            sees, uniform under a balancing sampler, so
                                                   the loss becomes plain CE (no warning)
alpha + a sampler                                  not double: alpha is computed from the
                                                   resampled counts (uniform weights under a
                                                   balancing sampler)
``ldam`` + alpha (with or without ``drw_epoch``)   the paper's LDAM-DRW: margins and weights act
                                                   differently (no warning)
``threshold`` / ``posthoc_tau`` + any loss          moves the decision only; stacking both is an
                                                   error
=================================================  ============================================
"""

from ..utils.warn import warn

_PRIOR_LOSSES = ("logit_adjusted", "balanced_softmax")


def check_corrections(estimator, n_classes):
    """Raise for conflicting decision parameters; warn for double corrections.

    Parameters
    ----------
    estimator : ImageImbalanceClassifier
    n_classes : int
        Number of classes in ``y``.
    """
    name = type(estimator).__name__
    loss, alpha, sampler = estimator.loss, estimator.alpha, estimator.sampler
    threshold, posthoc_tau = estimator.threshold, estimator.posthoc_tau
    if threshold is not None and n_classes != 2:
        raise ValueError(
            f"The 'threshold' parameter of {name} applies to binary problems; y has "
            f"{n_classes} classes. Use threshold=None (and posthoc_tau=... to shift a "
            "multi-class decision towards rare classes)."
        )
    if threshold is not None and posthoc_tau is not None:
        raise ValueError(
            f"The 'threshold' and 'posthoc_tau' parameters of {name} both set the "
            f"decision; got threshold={threshold!r} and posthoc_tau={posthoc_tau!r}. "
            "Set one of them to None."
        )
    if getattr(estimator, "drw_epoch", None) is not None and alpha is None:
        raise ValueError(
            f"The 'drw_epoch' parameter of {name} switches the class weights of 'alpha' "
            f"on at epoch {estimator.drw_epoch}, but alpha=None. Set alpha (e.g. "
            "alpha='effective' as in LDAM-DRW) or drw_epoch=None."
        )
    tta = estimator.tta
    if tta is not None and tta > 1 and estimator.augment is False:
        raise ValueError(
            f"The 'tta' parameter of {name} averages {tta} augmented views, but "
            "augment=False gives no augmentation. Set augment=True or tta=None."
        )
    if isinstance(loss, str):
        _warn_double(name, loss, alpha, sampler, posthoc_tau)


def _warn_double(name, loss, alpha, sampler, posthoc_tau):
    reasons = []
    if loss in _PRIOR_LOSSES and alpha is not None:
        reasons.append(
            f"loss={loss!r} already removes the class prior and alpha={alpha!r} re-weights "
            "the classes again"
        )
    if loss == "cb_focal" and alpha is not None:
        reasons.append(
            f"loss='cb_focal' weights the classes by effective numbers and alpha={alpha!r} "
            "multiplies a second class weighting onto them"
        )
    if loss == "cb_focal" and sampler is not None:
        reasons.append(
            f"loss='cb_focal' weights the classes by their raw counts and sampler={sampler!r} "
            "rebalances the rows as well"
        )
    if loss in _PRIOR_LOSSES and posthoc_tau:
        reasons.append(
            f"loss={loss!r} trains prior-adjusted logits and posthoc_tau={posthoc_tau!r} "
            "adjusts them again at predict"
        )
    for reason in reasons:
        warn(
            f"{name}: {reason}; the rare classes are corrected twice and will be "
            "over-predicted. See imbal_estimators.imbalance.corrections."
        )
