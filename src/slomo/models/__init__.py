"""The built-in models, one module per model family, each defining its ``SPEC``.

They are declared in ``pyproject.toml``'s ``slomo.models`` entry-point group exactly as a plugin
package declares its own; :mod:`slomo.interpolator` finds them there.
"""
