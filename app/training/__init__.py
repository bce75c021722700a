"""What the Training page needs beyond widgets: the data root, the model plan, tables and the worker.

* :mod:`.datasets`: the data root (``BTLAB_DATA_ROOT``, default ``data/`` of the repository) and the
  class-folder datasets in it; the page never reads a path outside it.
* :mod:`.plan`: model configurations from the page's choices, the training runs, the paper's models.
* :mod:`.tables`: rows of the size, metrics and paper tables (pure functions).
* :mod:`.worker`: the background training job and the page's session state.
"""
