"""Turns a sweep folder of trial predictions into the paper's tables, figures and report."""
