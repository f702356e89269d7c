"""Read the inputs: the sweep folder, what it covers, the paper's published numbers."""
