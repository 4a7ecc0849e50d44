"""Compare losses, class weights, over-sampling and thresholds from Python.

The same comparison as ``imbal-estimators compare``: stratified CV of CE,
weighted CE, focal loss (gamma 1, 2 x alpha None, balanced, effective) and
over-sampling, each also with a threshold tuned on the training fold's
validation split. Prints the ranking and writes results.csv and report.html.

    python examples/compare_losses.py                 # the demo digits, ~3 minutes on 2 CPU cores
    python examples/compare_losses.py --data DIR      # your ImageFolder
    python examples/compare_losses.py --quick         # seconds: a smoke run
"""

import argparse
import os

from imbal_estimators import SmallCNN, load_image_folder, make_demo_image_folder
from imbal_estimators.app.compare import DEFAULT_GRID, compare
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
        configurations=DEFAULT_GRID[:3] if args.quick else DEFAULT_GRID,
        cv=2 if args.quick else 3,
        scoring="f1",
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
    result.write_results_csv(os.path.join(args.out, "results.csv"))
    _, html_path = write_report(comparison_blocks(result, root), args.out, "compare losses")
    print(f"\nReport: {html_path}")


if __name__ == "__main__":
    main()
