"""Which start makes a pretrained network's fine-tune train at the package's defaults?

The estimator alone (not ``compare``): cross-entropy with ``threshold="auto"``,
fine-tuned ``--epochs`` (6, the seed's) at the default ``lr=1e-4``, on the
pretrained-benchmark network (``answer_quality_pretrained.LiteNet``, 64 px), on the
same 70 / 30 splits as ``answer_quality.py --pretrained``. Variants:

* ``random``: the new head as built (the package before ``head_init``);
* ``probe``: LP-FT, the head solved on the frozen features first (``head_init="probe"``);
* ``head-lr xM``: the head at ``M * lr``, the body at ``lr`` (``head_lr_scale=M``);
* ``probe + head-lr xM``: both;
* ``... bn-eval``: the same with the body's BatchNorm statistics frozen (``freeze_norm``).

Prints held-out F1 of the rare class and wall seconds per variant and split; with
``--json`` writes them.

    cd benchmarks
    PYTHONPATH=.. python lpft_candidates.py --sets digits-8-vs-rest --splits 3 --json /tmp/c.json
"""

import argparse
import json
import tempfile
import time

import torch
from sklearn.metrics import f1_score

from imbal_estimators import ImageImbalanceClassifier

VARIANTS = ("random", "probe", "head-lr", "probe + head-lr")


def variant_params(variant, multiplier):
    return {
        "head_lr_scale": multiplier if "head-lr" in variant else 1.0,
        "head_init": "probe" if variant.startswith("probe") else "random",
        # bn-eval: the body's BatchNorm layers keep ImageNet's statistics (eval mode)
        "freeze_norm": "bn-eval" in variant,
    }


VARIANTS += ("random bn-eval", "probe bn-eval", "head-lr bn-eval", "probe + head-lr bn-eval")


def main(argv=None):
    from answer_quality import build_sets
    from answer_quality_pretrained import LiteNet, held_out_splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["digits-8-vs-rest"])
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--first-split", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--multiplier", type=float, default=10.0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = build_sets(tmp, False, args.seed)
        for name in args.sets:
            paths, labels = sets[name]
            _, rare, splits = held_out_splits(
                paths, labels, args.first_split + args.splits, args.seed
            )
            for split in range(args.first_split, args.first_split + args.splits):
                train, test = splits[split]
                for variant in args.variants:
                    start = time.perf_counter()
                    clf = ImageImbalanceClassifier(
                        module=LiteNet,
                        image_size=64,
                        device="cpu",
                        precision="fp32",
                        batch_size=32,
                        max_epochs=args.epochs,
                        lr=args.lr,
                        threshold="auto",
                        random_state=args.seed,
                        verbose=0,
                        **variant_params(variant, args.multiplier),
                    ).fit(paths[train], labels[train])
                    seconds = time.perf_counter() - start
                    f1 = f1_score(
                        labels[test], clf.predict(paths[test]), pos_label=rare, zero_division=0
                    )
                    losses = [round(e["valid_loss"], 3) for e in clf.history]
                    row = dict(
                        set=name,
                        split=split + 1,
                        variant=variant,
                        f1=float(f1),
                        seconds=seconds,
                        best_epoch=int(clf.best_epoch_),
                        threshold=float(clf.threshold_),
                        valid_loss=losses,
                    )
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if args.json:
                        with open(args.json, "w") as file:
                            json.dump(rows, file, indent=1)
    return rows


if __name__ == "__main__":
    main()
