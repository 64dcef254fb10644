"""One module per interpolator; each registers itself with :mod:`slomo.interpolator`."""
