"""The docstring of :class:`~imbal_estimators.ImageImbalanceClassifier`, in parts.

As skorch builds its classes' docstrings from module-level parts, so the class body
stays code: ``help()``, Sphinx and numpydoc read the assembled ``__doc__``, which
``tests/test_docstrings.py`` checks names every ``__init__`` parameter.
"""

SUMMARY = """\
Fine-tune a torchvision backbone on image paths, with imbalance handling as parameters.

    A :class:`skorch.NeuralNetClassifier` whose loss, class-weight strategy and
    resampling are constructor parameters, so ``GridSearchCV`` or Optuna can tune
    them with stratified cross-validation and standard scorers."""

PARAMETERS = """\
    loss : {"ce", "focal", "cb_focal", "ldam", "logit_adjusted", "balanced_softmax"}, \
            nn.Module subclass or instance, default="ce"
        ``"ce"`` is cross-entropy (weighted when ``alpha`` is set); ``"focal"``
        is :class:`~imbal_estimators.FocalLoss`; ``"cb_focal"`` (focal with
        effective-number weights, uses ``beta``), ``"ldam"``
        (``criterion__max_margin``, ``criterion__s``), ``"logit_adjusted"``
        (``criterion__tau``) and ``"balanced_softmax"`` are in
        :mod:`imbal_estimators.losses.balanced`, with formulas and references.
        LDAM and class-balanced focal get the raw counts of the training part,
        the logit-adjusted losses the counts the loss sees after the sampler
        (see :mod:`imbal_estimators.losses.registry`). A subclass is built the
        same way: each loss gets ``gamma``, ``beta``, the class
        weights (``alpha`` or ``weight``), ``class_counts``, ``label_smoothing``
        and the ``criterion__*`` hyperparameters only where its signature names
        them (see :func:`~imbal_estimators.losses.registry.get_loss`).
    gamma : float, default=2.0
        Focal loss focusing parameter, ``>= 0``; ``gamma=0`` is cross-entropy.
    alpha : None, str, float, sequence or dict, default=None
        Class weights, computed in ``fit`` from the labels the loss sees (the
        training part after the internal split, after the first epoch's
        resampling draw when ``sampler`` is set): ``"inverse"``, ``"balanced"``,
        ``"geometric"``, ``"effective"``, ``"sqrt"`` (see
        :func:`~imbal_estimators.compute_alpha`); a float in (0, 1) for binary
        problems, the weight of the positive class ``pos_label_`` (the other
        class gets ``1 - alpha``; with the default ``pos_label=None`` that is
        the rarer class, whatever the label order); a sequence ordered like
        ``classes_``; or a dict ``{label: weight}``.
    beta : float, default=0.999
        The effective-number ``beta`` in [0, 1) of ``alpha="effective"`` and of
        ``loss="cb_focal"``.
    sampler : imbalanced-learn sampler, "balanced_batches" or None, default=None
        Resamples the rows of the training part, drawn anew every epoch with a
        seed from ``random_state`` and the epoch. Never touches the validation
        split nor prediction. Samplers that need feature values (SMOTE family,
        ADASYN, distance-based under-samplers) run on the backbone's features
        with ``freeze_backbone=True`` (embedding space) and are refused
        otherwise. ``"balanced_batches"`` is the built-in
        :class:`~imbal_estimators.imbalance.samplers.BalancedBatchSampler`: every epoch
        draws as many rows as the training part has, with replacement, each
        class equally likely (``alpha`` then sees uniform counts).
    backbone : str, default="resnet34"
        A torchvision classification model, a timm model with the prefix
        ``"timm/"`` (``"timm/efficientnet_lite0"``; needs the ``[timm]`` extra) or
        ``"small_cnn"``; its head is replaced for ``len(classes_)`` classes.
    weights : "DEFAULT", str, path or None, default="DEFAULT"
        ``"DEFAULT"`` (the source's pretrained weights: torchvision's or timm's)
        or another torchvision weights name, the path of a state-dict file
        (``.pt``, ``.pth``, ``.bin``, ``.safetensors``) in the model's own key
        names, or ``None`` for random initialization.
    image_size : "auto" or int in [1, 4096], default="auto"
        The network's input geometry. ``"auto"``: the network's own evaluation
        transform, resize then centre crop with its interpolation (torchvision
        weights' ``transforms()``, e.g. shorter side 256 then 224 x 224; a timm
        model's ``pretrained_cfg``), and a 224 px square resize for
        ``"small_cnn"``, your own ``module`` and random-init torchvision models
        (:mod:`~imbal_estimators.models.preprocessing`). An int resizes every image
        to an ``image_size x image_size`` square, no crop. Training uses the same
        geometry (plus ``augment``); the one applied is the fitted
        ``input_geometry_``, saved in ``config.json``. The upper bound
        (``utils.limits.MAX_IMAGE_SIZE``) keeps a typo from filling the memory.
    normalize : "auto", "imagenet", "inception", (mean, std) or None, default="auto"
        The mean and std the network's input is normalized with (on ``[0, 1]``
        pixels). ``"auto"``: the network's own (torchvision weights'
        ``transforms()``, a timm model's ``pretrained_cfg``, else ImageNet's);
        ``"inception"``: inputs in ``[-1, 1]``; None: ``[0, 1]``, for a network
        that normalizes itself. Saved in ``config.json``'s ``preprocessing``.
    augment : bool or callable, default=True
        Train-time augmentation (random resized crop and horizontal flip), or
        a callable applied to each ``(3, H, W)`` uint8 tensor.
    monitor : str, default="balanced_accuracy"
        Validation metric that picks the epoch kept at the end of ``fit``:
        ``"balanced_accuracy"``, ``"f1"``, ``"f1_macro"``,
        ``"average_precision"``, ``"roc_auc"``, ``"mcc"`` or ``"valid_loss"``
        (the registry :mod:`imbal_estimators.decision.metrics`). Binary
        problems score the positive class ``pos_label_`` (``"f1"`` is the F1
        of that class, ``"average_precision"`` that of its probability);
        multi-class problems average over the classes (``"f1"`` is macro F1).
    pos_label : label or None, default=None
        The positive class of a binary problem: ``None`` is the rarer class of
        the labels given to ``fit`` (on a tie the later one, ``classes_[-1]``,
        scikit-learn's convention), or name one of the labels. It drives
        ``monitor``, ``threshold`` and a float ``alpha``. With class folders
        ``abnormal/`` (rare) and ``normal/`` the positive class is
        ``'abnormal'``, although it sorts first. A multi-class problem has
        none: a ``pos_label`` is an error there. See
        :mod:`imbal_estimators.decision.positive`.
    cache : "memory", directory path or None, default="memory"
        Reuse decoded, resized images (and, with ``freeze_backbone``, backbone
        features) across epochs, folds and candidates: ``"memory"`` keeps them
        in this process, a directory shares them between processes (a search
        with several workers), ``None`` decodes every time. Keys hold the
        file's path, inode, change and modification times, size and
        ``image_size`` (plus a digest of the backbone's weights for features),
        so an edited file or other weights never hit a stale entry.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    random_state : int, RandomState instance or None, default=None
        Seeds torch, the validation split and the sampler.
    freeze_backbone : bool, default=False
        Train only the new head: the backbone is frozen (eval mode, no
        gradients), its features are computed once per image through the
        ``cache`` and every epoch, fold and candidate trains a linear head on
        them. Augmentation is not applied (features are of the plain image).
    head_solver : {"lbfgs"} or None, default="lbfgs"
        How a frozen backbone's head trains. ``"lbfgs"``: to convergence, by
        full-batch L-BFGS along a path of L2 penalties, whatever ``lr``,
        ``max_epochs`` and ``optimizer``
        (:mod:`~imbal_estimators.training.head_solver`). With a fraction or int
        ``train_split`` the head trains on every row, and stratified k-fold CV
        over them (``k = round(1 / train_split)``) picks the penalty and fits
        ``threshold="auto"`` and ``calibrate`` on out-of-fold logits
        (:mod:`~imbal_estimators.training.head_folds`); ``valid_*`` in the
        history are those cross-validated scores. None: ``max_epochs`` epochs
        of ``optimizer`` at ``lr``. Ignored without ``freeze_backbone``.
    head_init : {"auto", "probe", "random"}, default="auto"
        Where a fine-tuned network's new head starts. ``"probe"``: at the
        linear probe's solution (LP-FT): the head is first solved to
        convergence on the frozen body's features of the training rows, with
        this configuration's loss, class weights and sampler (as ``head_solver``
        solves a frozen head), and then the whole network is fine-tuned from
        there (:mod:`~imbal_estimators.estimator.finetune`). ``"random"``: the
        new head as built. ``"auto"``: ``"probe"`` for a pretrained network
        (a backbone's ``weights`` or a weights file; your own ``module`` unless
        its class sets ``pretrained = False``) fine-tuned at an ``lr`` of at
        most 1e-4 (the default; the rate the three ``"auto"`` settings were
        measured to help at, where at 1e-3 they hurt), else ``"random"`` (as
        for a random initialization: ``weights=None``, ``small_cnn``). Ignored
        with ``freeze_backbone``.
    freeze_norm : bool or "auto", default="auto"
        Keep the body's BatchNorm layers in eval mode while fine-tuning: they
        normalize by their pretrained running statistics, which do not move
        (their scale and shift still train). A few hundred images of another
        domain in batches of 32 would otherwise replace those statistics with
        noisy ones at the first step (:mod:`~imbal_estimators.estimator.finetune`).
        ``"auto"``: True for a pretrained network at ``lr`` <= 1e-4 (as for
        ``head_init``), else False. Kept statistics suit small steps; with a
        larger ``lr`` (1e-3) the weights move away from them, which is why
        ``"auto"`` turns them off there. Ignored with ``freeze_backbone``.
    head_lr_scale : float or "auto", default="auto"
        The new head (the network's last Linear layer) trains at
        ``head_lr_scale * lr``, the rest of the network at ``lr``
        (:mod:`~imbal_estimators.estimator.finetune`). ``"auto"``: 10 for a
        pretrained network at ``lr`` <= 1e-4 (as for ``head_init``), else 1.
        At most 1e6; a head that is not Linear takes only 1 (or ``"auto"``).
        Ignored with ``freeze_backbone`` (only the head trains, or its solver
        ignores ``lr``).
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast dtype of the forward pass. ``"auto"`` is bfloat16 on CUDA
        (float16 with loss scaling where bfloat16 is unsupported) and on CPUs
        with native bfloat16 (AMX or AVX512-BF16, see
        :func:`~imbal_estimators.training.precision.cpu_has_native_bf16`),
        float32 on other CPUs; ``"fp16"`` needs CUDA. bfloat16 runs the network
        in channels-last format. The loss is computed in float32, and so is a
        frozen backbone's head on its cached features.
    module : nn.Module class or instance, default=None
        Replaces the torchvision backbone with your own network mapping
        ``(N, 3, H, W)`` float images to ``(N, n_classes)`` logits. A class
        whose signature has ``num_classes`` receives ``len(classes_)`` there.
        ``compare`` counts it as pretrained (``pretrained=False`` says otherwise).
    criterion : None
        Not used: the loss comes from ``loss`` (any other value is an error).
    optimizer : torch optimizer class, default=torch.optim.AdamW
    lr : float, default=1e-4
    max_epochs : int, default=10
    batch_size : int in [1, 65536] or -1, default=32
        Images per batch (``utils.limits.MAX_BATCH_SIZE``); -1 is the whole set.
    train_split : float, int, callable, None or False, default=0.2
        Fraction of each class held out to monitor ``monitor`` (an int ``k``
        holds out ``1/k``, like skorch's ``ValidSplit(k)``), a skorch-style
        callable (e.g. ``skorch.dataset.ValidSplit``), or ``None``/``False``
        (no validation; the last epoch is kept). A frozen head solved by
        ``head_solver="lbfgs"`` holds out nothing: the fraction or int sets the
        folds of its cross-validation (see ``head_solver``).
    callbacks : list of skorch callbacks, default=None
    verbose : int, default=1
        Progress bar and per-epoch table when > 0.
    tau, max_margin, ldam_s : deprecated
        Deprecated in 0.3, removed in 0.5: use ``criterion__tau`` (in [-10, 10],
        default 1.0: adjustment strength of ``loss="logit_adjusted"``),
        ``criterion__max_margin`` (> 0, default 0.5: margin of the rarest class of
        ``loss="ldam"``) and ``criterion__s`` (in (0, 100], default 30.0: logit
        scale of ``loss="ldam"``, the paper's value for normalized logits; with it
        ``predict_proba`` is flat unless ``calibrate=True``).
    label_smoothing : float in [0, 1), default=0.0
        Label smoothing of the cross-entropy losses (``"ce"``, ``"ldam"``,
        ``"logit_adjusted"``, ``"balanced_softmax"``); an error with the focal
        losses.
    drw_epoch : int or None, default=None
        Deferred re-weighting (Cao et al. 2019): the class weights of ``alpha``
        switch on at this epoch (1-based); before it the loss is unweighted.
        Needs ``alpha``. ``history`` records ``class_weights_on`` per epoch.
    threshold : None, float in [0, 1] or "auto", default=None
        Binary problems only: ``predict`` returns ``pos_label_`` where
        ``P(pos_label_) >= threshold``, the other class elsewhere. ``"auto"``
        tunes it on the internal validation split (the kept epoch's
        predictions) with :func:`imbal_estimators.decision.threshold.tune_threshold`:
        it maximizes ``monitor`` when ``monitor`` depends on the threshold
        (``"f1"``, ``"f1_macro"``, ``"balanced_accuracy"``, ``"mcc"``), and, by
        rule, the F1 of the positive class for the threshold-free monitors
        (``"average_precision"``, ``"roc_auc"``, ``"valid_loss"``). A
        validation split without an image of one of the two classes cannot
        rank thresholds: ``threshold_`` is then 0.5, with a warning, before
        training starts. ``predict_proba`` is unchanged.
    posthoc_tau : float >= 0 or None, default=None
        Post-hoc logit adjustment (Menon et al. 2021): ``predict`` returns
        ``argmax(log p - posthoc_tau * log prior)``, the prior from
        ``loss_class_counts_``. Not together with ``threshold``.
    calibrate : bool, default=False
        Temperature scaling fitted on the internal validation split's logits of
        the kept epoch: ``predict_proba`` returns ``softmax(logits /
        temperature_)``; the argmax (multi-class ``predict``) is unchanged. With
        ``threshold="auto"`` the threshold is tuned on calibrated probabilities.
    tta : int in [1, 64] or None, default=None
        Test-time augmentation: ``predict_proba`` averages the probabilities of
        ``tta`` views (at most ``utils.limits.MAX_TTA``), the first unaugmented,
        the others with the training augmentation seeded from ``random_state``,
        the view and the path (the same image always gets the same views).
        Needs ``augment``.
    checkpoint_dir : str, path or None, default=None
        Write a checkpoint there atomically after every epoch (model,
        optimizer, scheduler, callback states, history, seeds), one per data
        set (``checkpoint-<key>.pt``), with a checksum and a lock. A ``fit``
        with the same directory, data and a compatible configuration resumes
        after the last completed epoch, up to ``max_epochs`` in total; a
        checkpoint of other training parameters or split, of changed image
        files, or a damaged one is refused. See ``docs/reliability.md``.
    on_bad_image : {"raise", "warn", "skip"}, default="raise"
        What ``fit`` does with files that cannot be decoded: list them all in
        one :class:`~imbal_estimators.ImageFileError` before training, or drop
        them from training with one warning (``"warn"``) or quietly
        (``"skip"``; they are in ``skipped_images_`` either way).
    auto_batch_size : bool, default=False
        On an out-of-memory error in the first epoch, halve the batch size,
        rebuild the network and start again (with a warning naming the size
        that fits, kept in ``batch_size_``). Without it the error names the
        batch size that failed and what to try.
    **kwargs
        Any other skorch parameter: ``module__*``, ``optimizer__*``,
        ``criterion__*``, ``iterator_train__*``, ``iterator_valid__*``,
        ``warm_start``, ``compile=True`` (``torch.compile``, opt-in) ..."""

NOTES_AND_REST = """\
    On CUDA the network runs in channels-last memory format, batches are loaded
    by worker processes into pinned memory and copied without blocking, and the
    allocator's cached memory is released at the end of ``fit``, so a search of
    many fits does not accumulate it.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``, sorted.
    n_classes_ : int
    class_counts_ : ndarray of shape (n_classes,)
        Images per class in the training part (before resampling).
    loss_class_counts_ : ndarray of shape (n_classes,)
        Images per class as the loss sees them: the first epoch's draw of the
        sampler (its expected counts for ``"balanced_batches"``), else
        ``class_counts_``. ``alpha``, the logit-adjusted losses and
        ``posthoc_tau`` use these.
    class_weight_ : ndarray of shape (n_classes,) or None
        The resolved ``alpha``, ordered like ``classes_``.
    pos_label_ : label or None
        The positive class of a binary problem (from ``pos_label``); None for
        multi-class.
    pos_index_ : int or None
        Its column in ``predict_proba`` (its index in ``classes_``).
    class_weights_on_ : bool
        Whether the loss uses ``class_weight_`` now (off until ``drw_epoch``).
    sampler_ : fitted sampler or None
        The sampler of the last epoch's draw.
    train_indices_, valid_indices_ : ndarray of int
        Rows of ``X`` in the training part and in the validation split (every
        row and none for a frozen head cross-validated by ``head_solver``).
    best_epoch_ : int
        The epoch whose weights were kept.
    torch_seed_, split_seed_, sampling_seed_ : int
        The seeds of this fit, drawn from ``random_state`` (or a resumed
        checkpoint): torch (initialization, shuffling, augmentation), the
        internal split, the sampler's draws.
    threshold_ : float or None
        The decision threshold on ``P(pos_label_)`` that ``predict`` uses
        (binary), from ``threshold``.
    temperature_ : float or None
        The fitted temperature with ``calibrate=True``.
    ece_before_, ece_after_ : float or None
        Expected calibration error (15 bins, top label) on the validation split
        before and after temperature scaling, with ``calibrate=True``.
    batch_size_ : int
        The training batch size used (smaller than ``batch_size`` after
        ``auto_batch_size`` halved it).
    skipped_images_ : list of dict
        ``{"index", "path", "reason"}`` of each file ``on_bad_image`` dropped.
    resumed_from_epoch_ : int
        The epoch the fit resumed after (0 when it started afresh).
    input_geometry_ : dict
        The resize, crop and interpolation every image gets (training, validation,
        prediction): ``{"crop", "resize", "interpolation", "keep_ratio"}``, ``resize``
        None for a square resize (see ``image_size``).
    history : skorch History
        Per epoch: ``train_loss``, ``valid_loss``, ``valid_<monitor>``,
        ``train_class_counts`` (with a sampler), ``class_weights_on`` (with
        ``drw_epoch``), ``dur``.

    See Also
    --------
    imbal_estimators.compute_alpha : The class-weight strategies.
    imbal_estimators.FocalLoss : The focal loss module.
    imbal_estimators.load_image_folder : Paths and labels of an ImageFolder.

    Examples
    --------
    >>> from imbal_estimators import ImageImbalanceClassifier, load_image_folder
    >>> from sklearn.model_selection import GridSearchCV, StratifiedKFold
    >>> paths, labels = load_image_folder("data/train")  # doctest: +SKIP
    >>> clf = ImageImbalanceClassifier(loss="focal", alpha="balanced")
    >>> search = GridSearchCV(clf, {"gamma": [0, 1, 2], "alpha": [None, "balanced"]},
    ...                       cv=StratifiedKFold(5), scoring="balanced_accuracy")
    >>> search.fit(paths, labels)  # doctest: +SKIP
    """

CLASSIFIER_DOC = (
    SUMMARY
    + "\n\n    Parameters\n    ----------\n"
    + PARAMETERS
    + "\n\n    Notes\n    -----\n"
    + NOTES_AND_REST
)
