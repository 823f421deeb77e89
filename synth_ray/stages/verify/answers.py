"""Final answers of math solutions: extraction, normalisation, exact numeric comparison.

ReST-EM (survey, "Synthetic data for instruction-tuning") checks math responses against the
ground truth's final answer with a binary reward. Extraction, in order of precedence (the last
occurrence of the first kind found): GSM8K's ``#### answer``, LaTeX ``\\boxed{...}``, "the
(final) answer is X" / "Answer: X", else the last number in the text.

Normalisation strips what does not change the value: ``$`` and currency words, thousands
separators (``1,000``), LaTeX wrappers (``\\text{...}``, ``\\left``, ``\\!``), a trailing period,
units and trailing words after a leading number (``5 apples``, ``12 km/h``). Numbers are compared
exactly as fractions (``0.5`` = ``1/2`` = ``\\frac{1}{2}``); a percentage matches its number or
its fraction (``50%`` = ``50`` = ``0.5``). What is not a plain number goes to the symbolic checker
(``symbolic.py``).
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUM = r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+"
_NUMBER = re.compile(_NUM)
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|=|:)\s*[:\s]*(.+?)(?:\n|$)", re.IGNORECASE
)
_HASHES = re.compile(r"####\s*(.+?)\s*(?:\n|$)")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mbox|textrm|mathbf)\s*\{([^{}]*)\}")
_LEADING_NUMBER = re.compile(
    r"^\s*(?P<num>-?\s*(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+(?:\.\d+)?)?)\s*(?P<pct>%|\\%|percent)?"
)


def boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def extract_answer(text: str) -> tuple[str | None, str]:
    """(answer, how) from a model's solution; how is hashes | boxed | answer_is | last_number."""
    text = text or ""
    hashes = _HASHES.findall(text)
    if hashes:
        return hashes[-1].strip(), "hashes"
    b = boxed(text)
    if b is not None:
        return b.strip(), "boxed"
    said = _ANSWER_IS.findall(text)
    if said:
        return said[-1].strip().rstrip(".").strip(), "answer_is"
    nums = _NUMBER.findall(text)
    if nums:
        return nums[-1], "last_number"
    return None, "none"


def reference_answer(answer: str) -> str:
    """The final answer of a reference: GSM8K's solutions end in ``#### 42``."""
    answer = str(answer)
    if "####" in answer:
        return answer.rsplit("####", 1)[1].strip()
    b = boxed(answer)
    return b.strip() if b is not None else answer.strip()


def clean(ans: str) -> str:
    """Strip formatting that does not change the value (see the module docstring)."""
    s = ans.strip().replace("\u2212", "-")
    s = _TEXT_CMD.sub(r" \1", s)
    for a, b in (
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\ ", " "),
        ("\\$", ""),
        ("$", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("^\\circ", ""),
        ("^{\\circ}", ""),
        ("\\%", "%"),
    ):
        s = s.replace(a, b)
    s = re.sub(r"^(?:usd|us\$|dollars?|rs\.?|€|£)\s*", "", s, flags=re.IGNORECASE)
    s = s.strip().rstrip(".").strip()
    s = re.sub(r"^[A-Za-z]\s*=\s*", "", s)  # "x = 5" -> "5"
    if len(s) >= 2 and s[0] == "{" and s[-1] == "}":
        s = s[1:-1].strip()
    return s


def _fraction(s: str) -> Fraction | None:
    s = s.replace(",", "").replace(" ", "")
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            return Fraction(a) / Fraction(b)
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


_NOT_UNITS = {"pi", "sqrt", "e", "i", "π"}
_FRAC = re.compile(r"^(-?)\\frac\s*\{\s*(-?[\d.]+)\s*\}\s*\{\s*(-?[\d.]+)\s*\}$")


def numeric(ans: str) -> tuple[Fraction, bool] | None:
    """(value, is_percent) when ``ans`` is a plain number (with optional units or words after
    it), a fraction ``a/b`` or ``\\frac{a}{b}``, or a percentage; else None."""
    s = clean(ans)
    m = _FRAC.match(s)
    if m:
        v = _fraction(f"{m.group(2)}/{m.group(3)}")
        return (-v if m.group(1) else v, False) if v is not None else None
    m = _LEADING_NUMBER.match(s)
    if not m:
        return None
    rest = s[m.end() :].strip()
    # "5 apples" and "12 km/h" are numbers with units; "2x + 1" or "3^2" are expressions.
    if rest and not re.match(r"^[A-Za-z][A-Za-z .,/²³]*$", rest):
        return None
    first = rest.split()[0].lower() if rest else ""
    if first in _NOT_UNITS or (len(first) == 1 and first in "abcknxyzt"):
        return None  # "2x", "3 pi", "2 sqrt(2)": an expression, not a unit
    v = _fraction(m.group("num"))
    if v is None:
        return None
    return v, m.group("pct") is not None or rest.lower().startswith("percent")


def numbers_equal(a: str, b: str) -> bool | None:
    """True/False when both sides are numbers; None when either is not (go symbolic)."""
    x, y = numeric(a), numeric(b)
    if x is None or y is None:
        return None
    (vx, px), (vy, py) = x, y
    candidates_x = {vx, vx / 100} if px else {vx}
    candidates_y = {vy, vy / 100} if py else {vy}
    return bool(candidates_x & candidates_y)
