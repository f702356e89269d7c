"""Compute every number of the report from what analysis.read returned."""
