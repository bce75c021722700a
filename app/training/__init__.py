"""What the Training page needs beyond widgets: the data root, the model plan, tables and the worker.

* :mod:`.datasets`: the data root (``BTLAB_DATA_ROOT``, default ``data/`` of the repository) and the
  class-folder datasets in it; the page never reads a path outside it.
* :mod:`.inputs`: the page's inputs as fields (one session store, ``t_*`` in the URL).
* :mod:`.plan`: model configurations from the page's choices, the training runs, the paper's models.
* :mod:`.tables`: rows of the size, metrics and paper tables (pure functions).
* :mod:`.views`: small drawn pieces (outcomes, estimate, sweep, downloads).
* :mod:`.worker`: the background training job.
* :mod:`.charts`: loss, metric and sweep figures (a diverged run's stopping point drawn).
* :mod:`.previews`: a task's preview dict -> images, caption cells, prediction rows (pure).
* :mod:`.gallery`: the previews laid out live (sample grids, reconstructions, canvas, captions).
* :mod:`.controls`: the action task's clip controls, another task's own options, the scroll to the live area.
* :mod:`.command`: the ``python -m btcore.train --task ...`` command of the page's race.
"""
