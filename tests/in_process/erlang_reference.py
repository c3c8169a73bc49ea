"""Erlang C computed independently of Vigie: the textbook formula in exact rational
arithmetic (Python's unbounded integers), no recursion, no floating point until the end.

Prints one JSON object per line: agents, erlangs (as a fraction), C and the service
level within 20 s for an AHT of 180 s, over a grid of loads and agent counts up to 400.
"""
import json
import math
from fractions import Fraction


def erlang_c(n: int, a: Fraction) -> Fraction:
    if a >= n:
        return Fraction(1)
    term = Fraction(1)  # a^k / k!
    total = Fraction(0)
    for k in range(n):
        total += term
        term = term * a / (k + 1)
    top = term * n / (n - a)  # a^n / n! * n / (n - a)
    return top / (total + top)


def main() -> None:
    for n in [1, 2, 5, 10, 12, 25, 50, 100, 200, 400]:
        for share in [Fraction(1, 10), Fraction(1, 2), Fraction(4, 5), Fraction(19, 20), Fraction(99, 100), Fraction(11, 10)]:
            a = share * n
            c = erlang_c(n, a)
            sl = 0.0 if a >= n else 1 - float(c) * math.exp(-float(n - a) * 20 / 180)
            print(json.dumps({"agents": n, "num": a.numerator, "den": a.denominator, "c": float(c), "sl": sl}))


if __name__ == "__main__":
    main()
