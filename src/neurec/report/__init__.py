"""The report as a library, without Kedro: ``results`` assembles every model's results on a
split into the metrics.json structure (intervals, significance), ``archive`` finds the
results earlier runs saved, ``render`` writes report.md / report.html from templates, and
``plots`` draws the charts."""
