# expect: error
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import os
import signal

os.kill(os.getppid(), signal.SIGKILL)
raise SystemExit("the parent survived")
