"""Showing a run: the graph drawn (DOT, Mermaid, SVG layout) and the HTML report."""
