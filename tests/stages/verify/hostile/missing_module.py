# expect: import_error
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import synth_ray_no_such_module_xyz
