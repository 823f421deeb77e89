# expect: error
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import os

print(sorted(os.listdir(os.path.dirname("__SECRET__"))))
print(open("__SECRET__").read())
