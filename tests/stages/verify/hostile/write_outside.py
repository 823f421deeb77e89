# expect: error
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import os

for path in ("__TARGET__", os.path.expanduser("~root") + "/synth-ray-pwned", "__REPO__/PWNED"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("pwned")
