"""What the Approximation page needs beyond widgets.

* :mod:`.plan` - the page's inputs as a validated :class:`~.plan.RunSpec` (tasks, budgets, keys).
* :mod:`.run` - the worker: fits the tasks (once each), picks the best candidate per format,
  reconstructs; result records :class:`~.run.RunResult`, :class:`~.run.MainRow`, :class:`~.run.SweepPoint`.
* :mod:`.session` - session state: defaults and widget callbacks, trained runs, the two caches, harvest.
* :mod:`.analysis` - the Pareto front, the noise floor and the teaching text.
* :mod:`.inputs` - the page's inputs as fields (session store, URL query, defaults).
* :mod:`.advice` - the Suggest action: :func:`btcore.suggest_formats` in a job, applying its recommendation.
* :mod:`.views` - drawing the results table, figures and the advice.
* :mod:`.charts` - the page's figures (error vs parameters, heatmaps, convergence, the advice front).
"""
