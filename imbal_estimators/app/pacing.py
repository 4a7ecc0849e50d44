"""Keep a comparison within its budget while it runs.

The plan (:mod:`~imbal_estimators.app.plan`) estimates every fit from a short
probe, and a probe can be off by a factor of two or more (a busy machine,
epochs that slow down as the cache warms, a validation pass the probe did not
see). :class:`Pacer` corrects it with the fits already done: the wall time
they took over what the plan gave them is the *pace*, and the rest of the run
is re-estimated at that pace. The progress bar shows that estimate.

With a budget, once the re-estimate shows the run would end after the budget,
the pacer drops the configurations still to run in the plan's drop order
(:func:`~imbal_estimators.app.plan.droppable`: never plain cross-entropy, the
focal row or a method the user named) and then refit seeds, and says so. The
fold-major order of the fits means the first fold of every configuration is
measured before anything is dropped.
"""

import time

from .plan import dropped_lines, format_duration

#: re-plan only past this fraction of the budget, so one slow first fit does not drop much
_TRUST_AFTER = 0.15


class Pacer:
    """The running estimate of a comparison and what it drops to keep the budget.

    Parameters
    ----------
    budget : float or None
        Seconds for the whole run, counted from ``start``.
    start : float
        ``time.perf_counter()`` when the run began (before the probe).
    workers : int
    log : callable
        Where the pacer says what it drops.
    """

    def __init__(self, budget, start, workers=1, log=print):
        self.budget = budget
        self.start = start
        self.workers = max(1, workers)
        self.log = log
        self.fits_start = None
        self.planned_done = 0.0
        self.removed = []  # configurations dropped while running

    def begin_fits(self):
        if self.fits_start is None:
            self.fits_start = time.perf_counter()

    def finished(self, planned_seconds):
        """A fit the plan gave ``planned_seconds`` finished."""
        self.planned_done += planned_seconds

    @property
    def pace(self):
        """Wall seconds per planned second so far (1 before any fit)."""
        if self.fits_start is None or self.planned_done <= 0:
            return 1.0
        spent = time.perf_counter() - self.fits_start
        return max(spent / (self.planned_done / self.workers), 0.05)

    def elapsed(self):
        return time.perf_counter() - self.start

    def remaining(self, planned_seconds):
        """Wall seconds of work the plan gives ``planned_seconds`` (fits in parallel)."""
        return self.pace * planned_seconds

    def left_text(self, fits_left, serial_left):
        """``"about 3 min 10 s left"`` for ``fits_left`` planned seconds of fits (spread over
        the workers) and ``serial_left`` of refits and report."""
        seconds = self.remaining(fits_left / self.workers + serial_left)
        return f"about {format_duration(seconds)} left"

    def over_by(self, fits_left, serial_left):
        """Seconds the run is estimated to end after the budget (<= 0: within)."""
        if self.budget is None:
            return float("-inf")
        return self.elapsed() + self.remaining(fits_left / self.workers + serial_left) - self.budget

    def trusted(self):
        return self.budget is not None and self.elapsed() > _TRUST_AFTER * self.budget

    def choose_drops(self, candidates, cost_left, fits_left, serial_left):
        """Configurations of ``candidates`` (first to go first) to drop now.

        ``cost_left(config)``: planned seconds of its fits still to run;
        ``fits_left``: planned seconds of every fit still to run; ``serial_left``:
        of the refits and the report. Returns the list to drop (empty within the
        budget, or before the pace can be trusted).
        """
        if not self.trusted():
            return []
        chosen = []
        for config in candidates:
            if self.over_by(fits_left, serial_left) <= 0:
                break
            if cost_left(config) <= 0:  # all its fits done: dropping it saves nothing
                continue
            fits_left -= cost_left(config)
            chosen.append(config)
        return chosen

    def drop(self, configs, serial_left, fits_left):
        """Record and announce ``configs`` dropped while running."""
        if not configs:
            return
        self.removed += configs
        self.log(
            f"\nBudget: the fits so far ran at {self.pace:.2f} x the plan's estimate, and "
            f"the rest would end {format_duration(self.over_by(fits_left, serial_left))} "
            f"after the budget of {format_duration(self.budget)}; dropping "
            f"{len(configs)} more configuration(s):"
        )
        for line in dropped_lines(configs)[1:]:
            self.log(line)

    def refits_within(self, refits, refit_seconds, report_seconds):
        """The refit seeds that fit in the budget (at least 1 when any were planned)."""
        if self.budget is None or refits <= 1:
            return refits
        keep = refits
        while keep > 1 and self.over_by(0.0, keep * refit_seconds + report_seconds) > 0:
            keep -= 1
        if keep != refits:
            self.log(
                f"\nBudget: refitting {keep} seed(s) instead of {refits} "
                f"({format_duration(self.elapsed())} spent of {format_duration(self.budget)})."
            )
        return keep
