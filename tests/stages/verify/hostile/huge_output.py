# expect: file_size_limit wall_time_limit
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
import sys

line = "x" * 65536
while True:
    sys.stdout.write(line)
