"""Helpers every stage may use, depending on none: parameter validation (vendored from
scikit-learn), the stack level of user-facing warnings, and the class-count formulas."""
