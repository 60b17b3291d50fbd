"""ticgw: an open-source gateway for French electricity meters (TIC)."""

# The one place the version is written: pyproject.toml reads it (dynamic), and
# `ticgw pak build --version` rewrites it in the copy of the tree it builds from.
__version__ = "0.1.0"
