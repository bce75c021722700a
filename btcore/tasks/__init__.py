"""Training tasks: one module per task, one interface (:class:`~btcore.tasks.base.Task`) for every trainer.

The trainer, the race, the sweep and the CLI (``--task``) look tasks up here by name. A new task is
a module with a :class:`Task` subclass, added to :data:`TASKS` below.

* :mod:`~btcore.tasks.base`: :class:`Task`, :class:`Chance`;
* :mod:`~btcore.tasks.action`: :class:`ActionTask` (action recognition, the default);
* :mod:`~btcore.tasks.generation_task`: :class:`GenerationTask` (DRAW on handwritten digits);
* :mod:`~btcore.tasks.captioning_task`: :class:`CaptioningTask` (captions of generated scenes);
* :mod:`~btcore.tasks.sequences`: :class:`SequencesTask` (the user's ``.npz`` sequences).
"""

from .base import Chance, DeferredChance, Task, to_device
from .action import ActionTask
from .sequences import SequencesTask
from .generation_task import GenerationTask
from .captioning_task import CaptioningTask

__all__ = ["Task", "Chance", "DeferredChance", "ActionTask", "GenerationTask", "CaptioningTask", "SequencesTask", "TASKS",
           "task_names", "make_task", "to_device"]

#: The registry: task name -> its class (instances take the task's data options as keywords).
TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (ActionTask, GenerationTask, CaptioningTask, SequencesTask)}


def task_names() -> tuple[str, ...]:
    """The registered task names, the default (``"action"``) first."""
    return tuple(TASKS)


def make_task(name: str | Task = "action", **options) -> Task:
    """The task called ``name`` with its data ``options`` (a :class:`Task` is returned as it is)."""
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name](**options)
