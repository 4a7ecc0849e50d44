"""Compare every imbalance method from Python and get the recommended model back.

The same comparison as ``imbal-estimators compare``: stratified CV of the method table
(CE, weighted CE, focal gamma x alpha, class-balanced focal, LDAM-DRW, logit-adjusted,
Balanced Softmax, over-/under-sampling, class-balanced batches), each also with the
estimator's own tuned threshold; a recommendation that claims only what a paired
corrected t-test supports; the recommended configuration refitted on all the images.
Prints the plan, the ranking and the recommendation, writes results.csv, report.html
and the model.

    python examples/compare_losses.py                 # the demo digits, ~5 minutes on 2 cores
    python examples/compare_losses.py --data DIR      # your ImageFolder
    python examples/compare_losses.py --quick         # seconds: a smoke run
"""

import argparse
import os

from imbal_estimators import SmallCNN, load, load_image_folder, make_demo_image_folder
from imbal_estimators.app.compare import compare
from imbal_estimators.app.report import comparison_blocks, recommendation, write_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an ImageFolder; default: the embedded demo data")
    parser.add_argument("--out", default="compare_losses_out", help="where to write the report")
    parser.add_argument("--quick", action="store_true", help="tiny data, 3 configurations")
    args = parser.parse_args()

    sizes = dict(n_majority=60, n_minority=15) if args.quick else {}
    root = args.data or make_demo_image_folder("demo_data", **sizes)
    X, y = load_image_folder(root)
    result = compare(
        X,
        y,
        methods=["ce", "focal g=2", "over"] if args.quick else None,  # None: every method
        cv=2 if args.quick else 3,
        scoring="f1",
        budget=None if args.quick else "5m",  # shrink the plan to five minutes here
        estimator_params=dict(
            module=SmallCNN,  # on real photos: drop this line for the pretrained ResNet34
            image_size=16 if args.quick else 32,
            max_epochs=1 if args.quick else 5,
            lr=3e-3,
            batch_size=16,
        ),
    )
    for rank, row in enumerate(result.rows, start=1):
        print(f"{rank:>2}. {row.name:45s} F1 {row.mean('f1'):.3f} ± {row.std('f1'):.3f}")
    print()
    print("\n".join(recommendation(result)).replace("**", ""))
    os.makedirs(args.out, exist_ok=True)
    result.write_results_csv(os.path.join(args.out, "results.csv"), root)
    model_dir = os.path.join(args.out, "model")
    result.best_estimator_.save(model_dir)  # the recommended configuration, fitted on all of X
    print(f"\nModel: {model_dir} (predicts {load(model_dir).predict(X[:3]).tolist()} for 3 images)")
    blocks = comparison_blocks(result, root, model_dir)
    _, html_path = write_report(blocks, args.out, "compare losses")
    print(f"Report: {html_path}")


if __name__ == "__main__":
    main()
