"""Maintainer tools run through ./dev (not part of the installed package)."""
