"""Typed datasets: a dataset read and written as pydantic models (see docs/typed-datasets.md)."""
