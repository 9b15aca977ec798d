"""The report: metrics.json (a stable contract), report.md and plots."""
