"""Turns a sweep folder of trial predictions into the paper's tables, figures and report.

Four stages, in the order the data flows, each a subpackage that imports only from itself
and the stages before it: ``read`` (the sweep folder, the paper's published cells) ->
``compute`` (every number) -> ``present`` (tables, findings, figures, the document) ->
``write`` (the report folder). The command lines sit on top: ``python -m analysis.report``,
``analysis.compare``, ``analysis.audit``, ``analysis.feature_axis``.
"""
