"""Present the numbers: table layout, the findings text, figures, the document's blocks."""
