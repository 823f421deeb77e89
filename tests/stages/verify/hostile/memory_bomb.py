# expect: memory_limit
# ruff: noqa  (hostile on purpose: written as a model might, not to this repository's style)
hog = []
while True:
    hog.append(bytearray(32 * 2**20))
