"""A command-line run around ``compare``: who owns ``OUT``, and what a stop says.

``OUT`` belongs to one run. A new or empty folder is taken; a folder with a
journal is resumed when it holds this run (the same images and settings) and
refused otherwise (``--restart`` empties it); any other non-empty folder is
refused unless ``--overwrite``. When a run is accepted, the outputs of an
earlier run (``model/``, ``results.csv``, the report) are removed at once, so a
stale model never sits beside a new report.
"""

import os

from .journal import FITS, Journal

JOURNAL = "journal"
# what compare writes into OUT (report.py writes report.md, report.html and plots/)
OUTPUTS = ("model", "results.csv", "fold_scores.csv", "report.md", "report.html", "plots")


class OutputRefused(ValueError):
    """``OUT`` holds something this run must not write into."""


def compare_journal(out_dir, *, restart=False, overwrite=False):
    """The :class:`~imbal_estimators.app.journal.Journal` of a compare into ``out_dir``.

    Raises
    ------
    OutputRefused
        ``out_dir`` is not empty and holds no compare journal (unless ``overwrite``).
    """
    journal_dir = os.path.join(out_dir, JOURNAL)
    names = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    has_journal = os.path.isdir(journal_dir)
    if names and not has_journal and not overwrite:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise OutputRefused(
            f"--out {out_dir!r} is not empty ({shown}) and holds no compare run to resume; "
            "give a new or empty folder, or pass --overwrite to replace compare's outputs "
            "in it (other files stay)."
        )
    stale = [os.path.join(out_dir, name) for name in OUTPUTS]
    return Journal(journal_dir, restart=restart or overwrite, stale=stale)


def refused_run(out_dir, exc):
    """The one-line message for a journal of another run in ``out_dir``."""
    return (
        f"--out {out_dir!r} holds a compare run on {' and '.join(exc.changed)}; old and new "
        "results are never mixed. Pass --restart to discard it and start afresh, or give "
        "another --out."
    )


def finished_fits(out_dir):
    """How many fits the journal in ``out_dir`` holds."""
    try:
        names = os.listdir(os.path.join(out_dir, JOURNAL, FITS))
    except OSError:
        return 0
    return sum(name.endswith(".npz") for name in names)


def stop_hint(args):
    """What an interrupted command kept, and how to go on (one line)."""
    if args.command in ("compare", "demo"):
        kept = finished_fits(args.out)
        return (
            f"{kept} finished fit(s) are kept in {os.path.join(args.out, JOURNAL)}; run the "
            "same command again to resume (--restart starts afresh)."
        )
    if args.command == "tune" and getattr(args, "storage", None):
        return (
            f"the finished trials are kept in {args.storage}; run the same command again "
            "to go on with the study."
        )
    if args.command in ("fit", "tune"):
        return "nothing was saved."
    return ""
