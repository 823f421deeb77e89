"""Self-improvement loops: iterations of generate with M_t, judge or verify, select, train
M_{t+1}, serve it, repeat (``synth_ray.loops.base``). Importing this package registers them."""

from synth_ray.loops import backtranslation as _backtranslation  # noqa: F401
from synth_ray.loops import constitutional as _constitutional  # noqa: F401
from synth_ray.loops import rest_em as _rest_em  # noqa: F401
from synth_ray.loops import self_rewarding as _self_rewarding  # noqa: F401
from synth_ray.loops import spin as _spin  # noqa: F401
