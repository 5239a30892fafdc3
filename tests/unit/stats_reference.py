#!/usr/bin/env python3
"""Reference values of tests/unit/test_stats.cpp, computed independently of
libflow: math.fsum (correctly rounded sums) and exact fractions with an
80-digit decimal square root for mean and standard deviation. The generator
replicates the test's splitmix64 bit for bit.
Run: python3 tests/unit/stats_reference.py
"""
import math, struct
from decimal import Decimal, getcontext
from fractions import Fraction
getcontext().prec = 80
M64 = (1 << 64) - 1
class SM:
    def __init__(s, seed): s.s = seed & M64
    def next(s):
        s.s = (s.s + 0x9E3779B97F4A7C15) & M64
        z = s.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)
def d(bits): return struct.unpack('<d', struct.pack('<Q', bits))[0]
def gen(seed, n, lo, hi):
    g = SM(seed); out = []
    for _ in range(n):
        r1 = g.next(); r2 = g.next()
        e = lo + r2 % (hi - lo + 1)
        out.append(d((r1 & (1 << 63)) | (e << 52) | (r1 & ((1 << 52) - 1))))
    return out
def dsqrt(f): return float((Decimal(f.numerator) / Decimal(f.denominator)).sqrt())
# breaking(): 1e308, 1, -1e308 a thousand times, then values of both signs
# from subnormals to about 1.3e300 (exponent fields 0..2020).
breaking = [1e308, 1.0, -1e308] * 1000 + gen(31, 50000, 0, 2020)
print("breaking sum", math.fsum(breaking).hex(), "naive", sum(breaking).hex())
print("breaking min", min(breaking).hex(), "max", max(breaking).hex())
spread = gen(32, 20000, 1023 - 400, 1023 + 400)
n = len(spread)
S1 = sum(Fraction(x) for x in spread); S2 = sum(Fraction(x) ** 2 for x in spread)
vs = (n * S2 - S1 * S1) / (n * (n - 1))
print("spread sum", math.fsum(spread).hex(), "mean", float(S1 / n).hex(),
      "variance", float(vs).hex(), "stddev", dsqrt(vs).hex())
print("million 0.1", math.fsum([0.1] * 1000000).hex())
# int_moments: int64 values, arithmetic shift of splitmix outputs, plus the
# extremes; and 10^15 + k for k in [-1000, 1000] (a tiny variance).
def s64(u): return u - (1 << 64) if u >> 63 else u
g = SM(41)
ints = [s64(g.next()) >> (i % 64) for i in range(20000)] + [-(1 << 63), (1 << 63) - 1]
g = SM(42)
near = [10**15 + (g.next() % 2001) - 1000 for _ in range(20000)]
for name, xs in (("ints", ints), ("near", near)):
    n = len(xs); S1 = sum(xs); S2 = sum(x * x for x in xs)
    vs = Fraction(n * S2 - S1 * S1, n * (n - 1)); vp = Fraction(n * S2 - S1 * S1, n * n)
    print(name, "mean", float(Fraction(S1, n)).hex(), "variance", float(vs).hex(),
          "stddev", dsqrt(vs).hex(), "stddev_population", dsqrt(vp).hex())
