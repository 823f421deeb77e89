# expect: cpu_time_limit wall_time_limit killed_by_SIGKILL
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import os

while True:
    try:
        os.fork()
    except OSError:
        pass
