"""The report: what every stage left in the run folder, as one page (report.md + a self-contained index.html).

    run.py        the whole-run report, section by section (`write_run_report`)
    data.py       what is read from the run folder, and how
    page.py       Markdown → the self-contained HTML page
    charts.py     the report's own charts (the stages' plots are copied)
    ablations.py  the proxy-model comparison (winnow.proxy.report) for the Ablations section

The report only reads: nothing here is imported by a stage.
"""
