"""Does ``compare --budget T`` keep its word? Wall time against the budget, on the demo data.

Writes the demo folder (600 + 120 handwritten digits, the data of
``imbal-estimators demo``) and runs, for each budget, as a user would (a new
process, timed from its start to its exit)::

    imbal-estimators compare DATA --out OUT --budget T --backbone small_cnn --weights none \\
        --image-size 32 --max-epochs 5 --lr 3e-3 --batch-size 16 --cv 3

(the demo's settings, every method of the default table). It prints the plan's
estimate, the configurations dropped before and while running, the wall time and its
ratio to the budget, which must stay under 1.25.

Run::

    python benchmarks/budget_timing.py                 # budgets 2m and 4m
    python benchmarks/budget_timing.py --budgets 90s 2m
    python benchmarks/budget_timing.py --quick         # 120 + 30 digits, budget 45s
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from imbal_estimators.data.demo import make_demo_image_folder

LIMIT = 1.25
SETTINGS = [
    "--backbone",
    "small_cnn",
    "--weights",
    "none",
    "--image-size",
    "32",
    "--max-epochs",
    "5",
    "--lr",
    "3e-3",
    "--batch-size",
    "16",
    "--cv",
    "3",
]


def run_one(data, out, budget):
    command = ["imbal-estimators", "compare", data, "--out", out, "--budget", budget, *SETTINGS]
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "imbal_estimators", *command[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in process.stdout:  # shown as it comes, with the time since the start
        lines.append(line)
        print(f"  [{time.perf_counter() - start:6.1f} s] {line.rstrip()[-200:]}", flush=True)
    wall = time.perf_counter() - start
    if process.wait() != 0:
        sys.exit(f"{' '.join(command)} failed")
    return command, wall, "".join(lines)


def seconds(budget):
    from imbal_estimators.app.plan import parse_budget

    return parse_budget(budget)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", default=["2m", "4m"])
    parser.add_argument("--quick", action="store_true", help="a small folder, one short budget")
    parser.add_argument("--keep", help="write the data and the outputs here")
    args = parser.parse_args()
    sizes = dict(n_majority=600, n_minority=120)
    if args.quick:
        sizes = dict(n_majority=120, n_minority=30)
        args.budgets = ["45s"]
    tmp = args.keep or tempfile.mkdtemp(prefix="budget-timing-")
    data = make_demo_image_folder(os.path.join(tmp, "data"), **sizes)
    rows = []
    for budget in args.budgets:
        out = os.path.join(tmp, f"out-{budget}")
        command, wall, stdout = run_one(data, out, budget)
        estimate = re.search(r"Estimated time: ([^(]+)\(", stdout)
        dropped = len(re.findall(r"^  - .+: imbal-estimators compare ", stdout, re.M))
        ratio = wall / seconds(budget)
        rows.append((budget, wall, ratio))
        print(f"$ {' '.join(command)}")
        print(f"  plan estimate after shrinking: {estimate.group(1).strip() if estimate else '?'}")
        print(f"  configurations dropped (before and while running): {dropped}")
        print(
            f"  wall time {wall:.0f} s for a budget of {seconds(budget):.0f} s: "
            f"{ratio:.2f} x the budget ({'within' if ratio <= LIMIT else 'OVER'} {LIMIT} x)",
            flush=True,
        )
    print(f"\ncores {os.cpu_count()}; data {sizes['n_majority']} + {sizes['n_minority']} digits")
    for budget, wall, ratio in rows:
        print(f"| {budget} | {wall:.0f} s | {ratio:.2f} |")
    if any(ratio > LIMIT for _, _, ratio in rows):
        sys.exit(f"a run took more than {LIMIT} x its budget")


if __name__ == "__main__":
    main()
