"""The frozen screen against a bare PyTorch loop, side by side in one run (issue 19, item 7).

Writes an ImageFolder of 1,000 + 300 JPEG photos (256 x 256, noise plus random shapes,
class "rare" drawn brighter; ``compare_timing.write_folder``) and a weights file of the
network (a random initialization saved with ``torch.save``: the cost is that of
pretrained weights, and a weights file counts as pretrained, so ``compare`` screens on
frozen features) into a temporary directory, then times, in this process:

1. ``imbal-estimators compare DATA --out OUT --freeze-backbone --weights NET.pth --cv 5
   --image-size 224`` (every method, the estimator's other defaults), with the time of
   its parts taken by wrapping, not profiling, the functions that do them:

   - decode: the pre-flight ``scan_images`` (every image decoded and resized once);
   - forward: ``compute_features`` (the body's pass over the images, through the cache);
   - report: ``comparison_blocks`` + ``write_report`` + saving the model + the CSV files;
   - heads: the rest of ``compare`` (every head fit and prediction, the statistics).

2. A bare PyTorch loop on the same images and network, once before compare and once
   after (the machine's load moves during a run; the ratio is to their mean): decode
   and resize every image once (PIL, bilinear, as many threads as compare's decode),
   forward them once through the body in the precision ``compare`` uses on this
   machine (``precision="auto"``: bfloat16 autocast and channels last on a CPU with
   native bfloat16, else float32), then fit one linear head per configuration and fold
   on one thread, as compare's heads (full-batch L-BFGS on cross-entropy with an L2
   penalty: SciPy's L-BFGS-B, the solver that ``head_solver="lbfgs"`` runs per penalty).

It prints both wall times, their split, the ratio (target: compare <= 1.3 x the bare
loop) and how many L-BFGS solves each ran: compare's head fit solves a path of 11
penalties, each on every training row and on the 5 folds of the internal
cross-validation that picks the penalty and the threshold (66 solves, where the bare
loop solves one). ``--profile FILE`` also writes a cProfile of the compare run (it slows
compare's Python-heavy parts; the ratio comes from the run without it).

``--one-penalty P`` measures the floor of the method rather than the method: every head of
compare solved at the single penalty ``P`` (``head_solver.HEAD_PENALTIES = (P,)``) instead of
along the path of 11, its inner 5-fold cross-validation (the threshold's out-of-fold
logits) and its samplers kept: 6 solves a fit, where the package's fit solves 66.
``--holdout`` drops that inner cross-validation instead: each head validates its path on
the estimator's 20 % holdout (``train_split=0.2`` as a plain split) and trains on the other
80 %, 11 solves a fit (1 with ``--one-penalty``).

Run::

    nice -n 5 python benchmarks/frozen_screen_speed.py              # 1,300 images, 224 px
    nice -n 5 python benchmarks/frozen_screen_speed.py --common 250 --rare 75 --image-size 112
    python benchmarks/frozen_screen_speed.py --quick                # 65 images at 64 px
    nice -n 5 python benchmarks/frozen_screen_speed.py --one-penalty 1e-3  # the method's floor
    nice -n 5 python benchmarks/frozen_screen_speed.py --holdout     # no inner CV
"""

import argparse
import contextlib
import cProfile
import functools
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.optimize
import torch
import torchvision
from compare_timing import write_folder
from PIL import Image


class Timers:
    """Seconds spent inside wrapped functions, by part (a nested call counts once)."""

    def __init__(self):
        self.seconds = {}
        self.solves = 0
        self._depth = 0

    def count(self, owner, name):
        """Count the calls of ``owner.name`` in ``self.solves``; returns the original."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def counted(*args, **kwargs):
            self.solves += 1
            return original(*args, **kwargs)

        setattr(owner, name, counted)
        return original

    def wrap(self, owner, name, part):
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            outer = self._depth == 0
            self._depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
                if outer:
                    self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)
        return original


def timed_compare(argv, profile_path=None):
    """Wall time of ``imbal-estimators compare`` and the seconds of its parts."""
    from imbal_estimators.app import compare as compare_module
    from imbal_estimators.app import report
    from imbal_estimators.app.cli import main as cli_main
    from imbal_estimators.estimator import classifier, ensemble
    from imbal_estimators.training import frozen, head_solver

    timers = Timers()
    patches = [
        (compare_module, "scan_images", "decode"),
        (frozen, "compute_features", "forward"),
        (report, "comparison_blocks", "report"),
        (report, "write_report", "report"),
        (classifier.ImageImbalanceClassifier, "save", "report"),
        (ensemble.SeedEnsembleClassifier, "save", "report"),
        (compare_module.Comparison, "write_results_csv", "report"),
        (compare_module.Comparison, "write_fold_scores_csv", "report"),
    ]
    originals = [(owner, name, timers.wrap(owner, name, part)) for owner, name, part in patches]
    originals.append((head_solver, "_solve", timers.count(head_solver, "_solve")))
    profile = cProfile.Profile() if profile_path else None
    try:
        start = time.perf_counter()
        with profile or contextlib.nullcontext():
            code = cli_main(argv)
        wall = time.perf_counter() - start
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    if profile is not None:
        profile.dump_stats(profile_path)
    if code not in (None, 0):
        raise SystemExit(f"compare exited with {code}")
    parts = {part: timers.seconds.get(part, 0.0) for part in ("decode", "forward", "report")}
    parts["heads"] = wall - sum(parts.values())
    return wall, parts, timers.solves


def bare_loop(data, network, weights, image_size, cv, n_configs, batch_size=64):
    """Seconds of decode, forward and heads of a plain loop doing the screen's work."""
    from sklearn.model_selection import StratifiedKFold

    from imbal_estimators import load_image_folder
    from imbal_estimators.training.precision import autocast_dtype, uses_channels_last
    from imbal_estimators.training.threads import head_threads

    paths, labels = load_image_folder(data)
    y = torch.as_tensor(np.searchsorted(np.unique(labels), labels))
    times = {}
    start = time.perf_counter()

    def decode(path):
        with Image.open(path) as image:
            image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            return torch.from_numpy(np.asarray(image).copy())

    # as many decoding threads as compare's pre-flight scan (PIL releases the GIL)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(decode, paths))
    times["decode"] = time.perf_counter() - start

    start = time.perf_counter()
    body = getattr(torchvision.models, network)()
    body.load_state_dict(torch.load(weights, weights_only=True))
    body.fc = torch.nn.Identity()
    body.eval()
    dtype = autocast_dtype("auto", "cpu")
    if uses_channels_last("cpu", dtype):
        body = body.to(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    features = []
    with torch.no_grad(), autocast:
        for first in range(0, len(images), batch_size):
            batch = torch.stack(images[first : first + batch_size]).permute(0, 3, 1, 2)
            batch = (batch.float() / 255 - mean) / std
            if dtype is not None:
                batch = batch.contiguous(memory_format=torch.channels_last)
            features.append(body(batch).float())
    features = torch.cat(features)
    times["forward"] = time.perf_counter() - start

    start = time.perf_counter()
    folds = StratifiedKFold(cv, shuffle=True, random_state=0).split(features, y)
    with head_threads():  # one intra-op thread, as compare's heads (training/threads.py)
        for train, _ in folds:
            X, t = features[train], y[train]
            for _ in range(n_configs):
                fit_head(X, t)
    times["heads"] = time.perf_counter() - start
    times["report"] = 0.0
    return times, str(dtype or torch.float32).removeprefix("torch.")


def fit_head(X, t, penalty=1e-3):
    """One linear head by full-batch L-BFGS on cross-entropy with an L2 penalty (in units
    of the features' mean square), to the gradient tolerance ``head_solver`` uses, with
    the solver it uses (SciPy's L-BFGS-B on the parameters as one vector)."""
    n_classes, width = int(t.max()) + 1, X.shape[1]
    mean_square = float(X.pow(2).mean())
    penalty = penalty * mean_square
    head = torch.nn.Linear(width, n_classes)
    start = torch.cat([head.weight.detach().ravel(), head.bias.detach()]).double().numpy()

    def value_and_gradient(x):
        vector = torch.from_numpy(x).float().requires_grad_()
        weight, bias = (
            vector[: n_classes * width].view(n_classes, width),
            vector[n_classes * width :],
        )
        loss = torch.nn.functional.cross_entropy(torch.addmm(bias, X, weight.t()), t)
        loss = loss + 0.5 * penalty * weight.pow(2).sum()
        loss.backward()
        return float(loss.detach()), vector.grad.double().numpy()

    options = {"maxiter": 100, "gtol": 1e-4 * max(mean_square, 1e-12) ** 0.5, "ftol": 0.0}
    return scipy.optimize.minimize(
        value_and_gradient, start, jac=True, method="L-BFGS-B", options=options
    )


@contextlib.contextmanager
def one_penalty(penalty):
    """compare's heads solved at ``penalty`` only, not along the path (None: the path)."""
    from imbal_estimators.training import head_solver

    path = head_solver.HEAD_PENALTIES
    if penalty is not None:
        head_solver.HEAD_PENALTIES = (penalty,)
    try:
        yield
    finally:
        head_solver.HEAD_PENALTIES = path


@contextlib.contextmanager
def holdout(enabled):
    """compare's heads validated on a 20 % holdout, without the inner cross-validation."""
    from imbal_estimators.training import head_solver, settings

    originals = [(m, m.cross_validation_folds) for m in (head_solver, settings)]
    if enabled:
        for module, _ in originals:
            module.cross_validation_folds = lambda net: None
    try:
        yield
    finally:
        for module, original in originals:
            module.cross_validation_folds = original


def n_configurations():
    from imbal_estimators.app.methods import default_configurations

    return len(default_configurations(features=True))


def run(args, tmp):
    data = write_folder(os.path.join(tmp, "data"), args.common, args.rare, args.side)
    weights = os.path.join(tmp, f"{args.network}.pth")
    torch.manual_seed(0)
    torch.save(getattr(torchvision.models, args.network)().state_dict(), weights)
    argv = ["compare", data, "--out", os.path.join(tmp, "report"), "--freeze-backbone"]
    argv += ["--backbone", args.network, "--weights", weights, "--cv", str(args.cv)]
    argv += ["--image-size", str(args.image_size)]
    print("imbal-estimators " + " ".join(argv), flush=True)
    n_configs = n_configurations()
    loads = [os.getloadavg()[0]]
    # the bare loop before and after compare: the machine's load moves during a run
    before, dtype = bare_loop(data, args.network, weights, args.image_size, args.cv, n_configs)
    loads.append(os.getloadavg()[0])
    with one_penalty(args.one_penalty), holdout(args.holdout):
        wall, parts, solves = timed_compare(argv, args.profile)
    loads.append(os.getloadavg()[0])
    after, _ = bare_loop(data, args.network, weights, args.image_size, args.cv, n_configs)
    loads.append(os.getloadavg()[0])
    totals = [sum(before.values()), sum(after.values())]
    print(
        f"\n{args.common} + {args.rare} JPEGs ({args.side} px) at {args.image_size} px, "
        f"{args.network}, {args.cv} folds, {n_configs} configurations, {dtype}, "
        + (
            ""
            if args.one_penalty is None
            else f"compare's heads at one penalty {args.one_penalty:g}, "
        )
        + ("compare's heads on a 20 % holdout (no inner CV), " if args.holdout else "")
        + f"{torch.get_num_threads()} torch threads; load average (1 min) "
        + " / ".join(f"{load:.1f}" for load in loads)
        + " before the bare loop / compare / the bare loop again / at the end"
    )
    print("| part | compare | bare loop before | bare loop after |\n|---|---|---|---|")
    for part in ("decode", "forward", "heads", "report"):
        print(f"| {part} | {parts[part]:.1f} s | {before[part]:.1f} s | {after[part]:.1f} s |")
    print(f"| total | {wall:.1f} s | {totals[0]:.1f} s | {totals[1]:.1f} s |")
    bare_solves = args.cv * n_configs
    print(f"| L-BFGS solves | {solves} | {bare_solves} | {bare_solves} |")
    mean = sum(totals) / 2
    print(
        f"compare / bare loop: {wall / mean:.2f} x the mean of the two bare loops "
        f"({wall / totals[0]:.2f} x and {wall / totals[1]:.2f} x; target <= 1.3 x)",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--common", type=int, default=1000)
    parser.add_argument("--rare", type=int, default=300)
    parser.add_argument("--side", type=int, default=256, help="JPEG side in px")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--network", default="resnet34", help="a torchvision model name")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--keep", help="write the data and the report here instead of a temp dir")
    parser.add_argument("--profile", help="also write a cProfile of compare to this file")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument(
        "--one-penalty",
        type=float,
        help="solve compare's heads at this one penalty instead of the path (the method's floor)",
    )
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="validate compare's heads on a 20 %% holdout instead of the inner 5-fold CV",
    )
    args = parser.parse_args()
    if args.quick:
        args.common, args.rare, args.side, args.image_size, args.cv = 50, 15, 64, 64, 2
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(args, tmp)


if __name__ == "__main__":
    main()
