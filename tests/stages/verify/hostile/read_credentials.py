# expect: error
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import os

print(dict(os.environ))
for path in ("/root/.ssh/id_rsa", "/root/.ray/auth_token", "/root/.bash_history"):
    if os.path.exists(path):
        print(open(path).read())
print(open(f"/proc/{os.getppid()}/environ").read())
