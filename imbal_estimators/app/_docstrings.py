"""The docstring of :func:`~imbal_estimators.app.compare.compare`, kept apart so that the
function stays code (skorch, too, keeps its docstrings in module-level parts): ``help()``,
Sphinx and numpydoc read the assigned ``__doc__``; ``tests/test_compare_constraints.py``
checks that it names every argument.
"""

COMPARE_DOC = """Cross-validate every configuration on image ``paths`` with ``labels``.

    Parameters
    ----------
    paths, labels : array-like of shape (n,)
        As returned by :func:`~imbal_estimators.load_image_folder`.
    methods : sequence of str, optional
        Method names (:data:`~imbal_estimators.app.methods.METHODS`) or
        configuration names; default: every method.
    configurations : sequence of Configuration, optional
        Your own list instead of the method table.
    grid : str or path, optional
        A JSON or YAML file of parameter sets
        (:func:`~imbal_estimators.app.methods.load_grid`).
    cv : int, default=5
        Stratified folds.
    repeats : int, default=1
        Repeats of the stratified ``cv``-fold split (repeated CV), for small folders.
    scoring : {"f1", "balanced_accuracy", "average_precision"}, default="f1"
        Ranks the rows; ``monitor`` (the epoch kept, and what a tuned threshold
        maximizes) follows it (:func:`monitor_for`: average precision with a
        threshold tuned for F1 on binary problems scored by F1) unless
        ``estimator_params`` sets ``monitor``.
    pos_label : label, optional
        Positive class of a binary problem; default: the rarer class.
    estimator_params : dict, optional
        ``ImageImbalanceClassifier`` parameters shared by every fit (backbone,
        weights, image_size, max_epochs, ...).
    random_state : int, default=0
        Seeds the folds and every fit.
    n_jobs : int or None, default=1
        joblib workers for the fits (any joblib backend; see
        :mod:`~imbal_estimators.app.parallel`). Results do not depend on it.
    threads : int, optional
        torch threads per fit (default: this process's count).
    budget : float or str, optional
        Seconds or a duration (``"20m"``): shrink the plan to fit
        (:mod:`~imbal_estimators.app.plan`).
    top_k : int, default=3
        Configurations of the screen that stage 2 fine-tunes (plus plain CE).
    screen : {"auto", True, False}, default="auto"
        Stage 1 on frozen features: ``"auto"`` when the network is pretrained
        (and is not frozen anyway).
    pretrained : {"auto", True, False}, default="auto"
        Whether the network starts from learned weights. ``"auto"``: torchvision
        or timm weights, a weights file, or your own ``module`` (unless its class
        sets ``pretrained = False``) are; ``weights=None`` is not. Random weights
        skip the screen (frozen random features would rank nothing).
    refit : bool, default=True
        Fit the recommended configuration on all the images
        (``best_estimator_``).
    ensemble : int >= 1, default=3
        Fits of that configuration with ``random_state``, ``random_state + 1``,
        ...; with more than one, ``best_estimator_`` is their
        :class:`~imbal_estimators.SeedEnsembleClassifier` (probabilities
        averaged, the mean tuned threshold), which scored 0.04 to 0.06 higher
        than one fit on held-out images (``docs/quality.md``). 1: a single
        ``ImageImbalanceClassifier``.
    progress : bool, default=True
        Print the plan and show one progress bar over every fit.
    log : callable, optional
        Where the plan's lines go besides the ``imbal_estimators.app.compare``
        logger (INFO), which always gets them (default: ``print`` when
        ``progress``; see :mod:`imbal_estimators.utils.log`).
    journal : str, path or Journal, optional
        A folder where every finished fit is recorded at once
        (:mod:`~imbal_estimators.app.journal`). The same call again resumes: it
        skips the recorded fits and gives the results of an uninterrupted run.
        A journal of other images or settings is refused (``ValueError``).
    restart : bool, default=False
        Empty a journal of other images or settings and start afresh.
    finish : callable, optional
        Called with the :class:`Comparison` at the end, under the progress bar
        and within the budget (the command line writes the report with it).
    started : float, optional
        ``time.perf_counter()`` when the run began, from which the budget counts
        (default: the call; the command line passes its own start).

    Returns
    -------
    Comparison

    Raises
    ------
    KeyboardInterrupt
        On the first Ctrl-C (SIGINT) or SIGTERM: the fit in progress is
        discarded, the finished ones stay in ``journal``.
    """
