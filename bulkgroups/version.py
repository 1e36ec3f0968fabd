"""The package version, in one place (the ledger records it in every run)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
