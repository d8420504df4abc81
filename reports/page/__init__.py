"""The HTML report: data, plots, tables and the page."""
