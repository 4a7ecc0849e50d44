"""The input geometry of an estimator: fitted (``input_geometry_``) or from its parameters."""

from ..data.geometry import Geometry
from ..models.preprocessing import network_geometry


def params_geometry(estimator):
    """The geometry the estimator's parameters give its network (what a new fit uses)."""
    return network_geometry(
        estimator.backbone,
        estimator.weights,
        estimator.module,
        estimator.image_size,
        estimator.get_params_for("module"),
    )


def estimator_geometry(estimator):
    """The geometry of a fitted estimator (``input_geometry_``), or the one its parameters
    give (before ``fit``; a model of a version before ``input_geometry_`` existed has an
    int ``image_size``: a square resize)."""
    fitted = estimator.__dict__.get("input_geometry_")
    if fitted is not None:
        return Geometry.of(fitted)
    return params_geometry(estimator)
