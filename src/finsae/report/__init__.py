"""The study report: one self-contained HTML page and the generated results pages, built only from artifacts.

``python -m finsae.report [--artifacts DIR] [--out DIR] [--results DIR] [--readme PATH]`` writes

* ``artifacts/report/index.html``: setup (models, data, code version, stage times), SAE quality per layer, the
  activation lens and the finance-vs-control verdicts, the diffing by layer with its controls and seed
  estimates, financial latents with labels, scores vs controls and example contexts, StockNet beside the
  published baselines, the daily and turnover-aware books, signal decay, equity curves and metrics with
  PSR/DSR and the trials count, the seed's claim tested, the canaries, and the write-up's claims beside the
  measurements. Images are inline PNGs, nothing is fetched; a stage without artifacts gets its section with
  "not run" and the command that makes it.
* beside it, the SAE and fine-tune tables and plots (``sae_table.{md,csv}``, ``sae_layers.png``,
  ``sae_demo.md``, ``finetune.md``, ``lr_sweep.{md,png}``); a corrupt SAE or fine-tune summary fails naming
  its file.
* ``docs/results/{headline,sae,analysis,labels,backtest,timing}.md``: the measured results as markdown, each
  headed by the command, machine, code version and a fingerprint of the artifact files it was made from
  (``docs/results/sources.json`` lists them); ``--check`` exits 1 when a page is stale.
* the headline table into README.md between ``<!-- headline:start -->`` and ``<!-- headline:end -->``.

One section model, two renderers: each stage's section is built once from the artifacts
(:mod:`~finsae.report.sections`: headings, text, tables, figures, reproduce commands, ...) and rendered as
HTML (:mod:`~finsae.report.page`) and as markdown (:mod:`~finsae.report.markdown`). Modules:
:mod:`~finsae.report.study` (reading, fingerprints), :mod:`~finsae.report.build` (the sections' registry and
the analysis, SAE and setup sections), :mod:`~finsae.report.analysis_sections` (the lens, the comparison,
the seed estimates, the methods' tables), :mod:`~finsae.report.trading_sections`,
:mod:`~finsae.report.timing_section`, :mod:`~finsae.report.headline` (the answer),
:mod:`~finsae.report.results` (the results pages and their staleness), :mod:`~finsae.report.sae_table` (the
SAE tables and plots), :mod:`~finsae.report.latents` (the latent browser). How to add a section or a table:
``docs/report.md``.
"""
