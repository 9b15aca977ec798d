"""The report's Jinja2 templates and style sheet: package data, read by jinja2.PackageLoader."""
