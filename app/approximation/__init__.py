"""What the Approximation page needs beyond widgets.

* :mod:`.plan` - the page's inputs as a validated :class:`~.plan.RunSpec` (tasks, budgets, keys).
* :mod:`.run` - the worker: fits the tasks (once each), picks the best candidate per format,
  reconstructs; result records :class:`~.run.RunResult`, :class:`~.run.MainRow`, :class:`~.run.SweepPoint`.
* :mod:`.state` - session state: defaults and widget callbacks, trained runs, the two caches, harvest.
* :mod:`.analysis` - the Pareto front, the noise floor and the teaching text.
"""
