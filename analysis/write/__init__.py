"""Write the report folder (tables, figures, report.md/html) and the W&B summary."""
