# expect: error
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import os
import time

if os.fork() == 0:
    os.setsid()  # leave the process group that the wall-clock kill targets
    time.sleep(60)
    os._exit(0)
raise SystemExit("left a child behind")
