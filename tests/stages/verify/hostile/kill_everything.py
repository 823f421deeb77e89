# expect: killed_by_SIGKILL error
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import os
import signal
import time

os.kill(-1, signal.SIGKILL)  # every process this uid may signal
time.sleep(0.2)
os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)  # the parent's group
