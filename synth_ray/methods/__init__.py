"""One package per survey generation method. Importing this package registers them as jobs
(``synth_ray.job.JOBS``)."""

from synth_ray.methods import alpaca as _alpaca  # noqa: F401
from synth_ray.methods import kwise_ranking as _kwise_ranking  # noqa: F401
from synth_ray.methods import self_instruct as _self_instruct  # noqa: F401
from synth_ray.methods import unnatural as _unnatural  # noqa: F401
from synth_ray.methods import wrap as _wrap  # noqa: F401
