"""The symbolic checker's helper process: one JSON request a line on stdin, one answer a line.

Run by ``symbolic.py`` as ``python -I _sympy_worker.py`` under the sandbox launcher's resource
limits; the parent kills it on a timeout and starts another. Inputs were sanitised by the parent
(digits, operators, brackets and a few known names only), so ``parse_expr`` cannot reach Python
beyond arithmetic.
"""

import json
import sys

from sympy import Tuple, simplify
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

T = standard_transformations + (implicit_multiplication_application, convert_xor)


def equal(a, b):
    ea, eb = parse_expr(a, transformations=T), parse_expr(b, transformations=T)
    if isinstance(ea, (tuple, Tuple)) or isinstance(eb, (tuple, Tuple)):
        if not (isinstance(ea, (tuple, Tuple)) and isinstance(eb, (tuple, Tuple))):
            return False
        return len(ea) == len(eb) and all(simplify(x - y) == 0 for x, y in zip(ea, eb))
    if simplify(ea - eb) == 0:
        return True
    eq = ea.equals(eb)
    return bool(eq)


def main():
    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            out = {"equal": equal(req["a"], req["b"])}
        except Exception as exc:
            out = {"equal": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":  # a script: importing it does nothing
    main()
