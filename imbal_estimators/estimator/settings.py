"""The settings of one fit, from the estimator's parameters (what ``training/`` reads)."""

from ..training.settings import FitSettings
from .geometry import estimator_geometry, params_geometry


def fit_settings(estimator, new_network=False):
    """The :class:`~imbal_estimators.training.settings.FitSettings` of ``estimator``'s
    parameters now (built once per fit; the helpers of ``training/`` read them).

    The input geometry is the fitted one (a continued fit keeps the geometry its
    network was trained on), or the parameters' for a ``new_network``.
    """
    geometry = params_geometry(estimator) if new_network else estimator_geometry(estimator)
    return FitSettings.from_params(
        estimator.get_params(deep=False),
        type(estimator).__name__,
        device=estimator.device,
        geometry=geometry,
    )
