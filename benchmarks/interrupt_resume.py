"""Measure what docs/cli.md says about stopping and resuming ``compare``.

On a small digits folder (the demo's images) the same ``compare`` command runs

1. uninterrupted (the reference ``results.csv``);
2. sent SIGINT once ``--at`` of its fits are journaled, then run again;
3. the same with SIGTERM and ``--n-jobs 2``;
4. killed with SIGKILL (the whole process group) at the same point, then run again;

and prints, for each stop, the exit status, the seconds from the signal to the exit, the fits
kept, the fits the rerun fitted, and whether the rerun's ``results.csv`` scores equal the
reference's row by row (``fit_seconds`` aside).

    python benchmarks/interrupt_resume.py [--at 0.4] [--out-dir DIR]
"""

import argparse
import csv
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from imbal_estimators.data.demo import make_demo_image_folder  # noqa: E402

SETTINGS = [
    *("--backbone", "small_cnn", "--weights", "none", "--image-size", "16"),
    *("--max-epochs", "3", "--batch-size", "16", "--lr", "0.003", "--cv", "3"),
    *("--methods", "ce,over,balanced_softmax", "--no-refit", "--device", "cpu"),
]
N_FITS = 9  # 3 configurations x 3 folds


def command(data, out, *extra):
    words = [sys.executable, "-m", "imbal_estimators", "compare", data, "--out", out]
    return words + SETTINGS + list(extra)


def fits(out):
    return len(glob.glob(os.path.join(out, "journal", "fits", "*.npz")))


def scores(out):
    with open(os.path.join(out, "results.csv"), newline="") as file:
        rows = list(csv.DictReader(file))
    return [{k: v for k, v in row.items() if k != "fit_seconds"} for row in rows]


def run(data, out, *extra):
    start = time.monotonic()
    done = subprocess.run(command(data, out, *extra), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    resumed = re.search(r"Resumed (\d+) finished fit\(s\)", done.stdout)
    return time.monotonic() - start, int(resumed.group(1)) if resumed else 0


def stop(data, out, signum, at, *extra, group=False):
    process = subprocess.Popen(
        command(data, out, *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )
    while fits(out) < at and process.poll() is None:
        time.sleep(0.05)
    sent = time.monotonic()
    (os.killpg if group else os.kill)(process.pid, signum)
    _, err = process.communicate()
    return process.returncode, time.monotonic() - sent, err.strip().splitlines()[-1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=float, default=0.4, help="fraction of fits before the stop")
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args()
    work = args.out_dir or tempfile.mkdtemp(prefix="interrupt-resume-")
    data = make_demo_image_folder(os.path.join(work, "digits"), n_majority=120, n_minority=30)
    at = max(1, round(args.at * N_FITS))
    print("command: " + " ".join(command(data, "OUT")[1:]))
    seconds, _ = run(data, os.path.join(work, "whole"))
    reference = scores(os.path.join(work, "whole"))
    print(f"uninterrupted: {seconds:.0f} s, {N_FITS} fits")
    cases = [
        ("SIGINT, 1 worker", signal.SIGINT, ()),
        ("SIGTERM, --n-jobs 2", signal.SIGTERM, ("--n-jobs", "2")),
        ("SIGKILL of the process group, 1 worker", signal.SIGKILL, ()),
    ]
    for name, signum, extra in cases:
        out = os.path.join(work, f"stopped-{signum}")
        status, exit_seconds, last = stop(
            data, out, signum, at, *extra, group=signum == signal.SIGKILL
        )
        kept = fits(out)
        seconds, resumed = run(data, out, *extra)
        print(
            f"{name}: exit status {status} after {exit_seconds:.2f} s, {kept} of {N_FITS} fits "
            f"kept; the rerun resumed {resumed} and fitted {N_FITS - resumed} in {seconds:.0f} "
            f"s; results.csv scores equal the uninterrupted run's: {scores(out) == reference}"
        )
        if last and signum != signal.SIGKILL:
            print(f"  {last[0]}")


if __name__ == "__main__":
    main()
