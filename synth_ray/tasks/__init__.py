"""Per-row tasks and the generic job that chains them (issue 19).

``base`` holds the contract (:class:`~synth_ray.tasks.base.Task`, ``TASKS``), ``read`` the
generic input rows, ``job`` the ``tasks`` job; one package per task (``evol_instruct``).
Importing this package registers the job and every built-in task.
"""

from synth_ray.tasks import job as _job  # noqa: F401
from synth_ray.tasks.base import TASKS, Parsed, Task, TaskConfig, build_chain, build_task
from synth_ray.tasks.base import load_builtin_tasks as _load

_load()

__all__ = ["TASKS", "Parsed", "Task", "TaskConfig", "build_chain", "build_task"]
