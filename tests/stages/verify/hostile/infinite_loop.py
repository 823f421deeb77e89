# expect: cpu_time_limit wall_time_limit
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
while True:
    pass
