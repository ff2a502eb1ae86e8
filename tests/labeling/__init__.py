"""Labeling-stage tests (a package, so that its conftest and helpers never shadow other folders' ones)."""
