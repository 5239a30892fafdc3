#!/usr/bin/env python3
"""Reference values of tests/unit/test_exact_sum.cpp, computed independently
of libflow: math.fsum (correctly rounded sums) and exact fractions with an
80-digit decimal square root for the moments. The generators replicate the
test's splitmix64 bit for bit. Run: python3 tests/unit/exact_sum_reference.py
"""
import struct, math
from fractions import Fraction
from decimal import Decimal, getcontext
getcontext().prec = 80
M64 = (1<<64)-1
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
        out.append(d((r1 & (1<<63)) | (e << 52) | (r1 & ((1<<52)-1))))
    return out
def moments(seed, n):
    g = SM(seed); out = []
    for _ in range(n):
        k = (g.next() % (1<<21)) - (1<<20)
        out.append(1e6 + k * 2.0**-30)
    return out
wide = gen(1, 100000, 0, 2000)
narrow = gen(2, 100000, 1003, 1043)
print("wide", math.fsum(wide).hex(), "naive", sum(wide).hex())
print("narrow", math.fsum(narrow).hex(), "naive", sum(narrow).hex())
xs = moments(3, 100000)
n = len(xs)
S1 = sum(Fraction(x) for x in xs); S2 = sum(Fraction(x)*Fraction(x) for x in xs)
mean = S1 / n
vp = (n*S2 - S1*S1) / (n*n); vs = (n*S2 - S1*S1) / (n*(n-1))
def dsqrt(f): return float((Decimal(f.numerator)/Decimal(f.denominator)).sqrt())
print("mean", float(mean).hex(), "vp", float(vp).hex(), "vs", float(vs).hex(), "sp", dsqrt(vp).hex(), "ss", dsqrt(vs).hex())
# a second moments set: wide-ish signed values
ys = gen(4, 20000, 1023-300, 1023+300)
n = len(ys)
S1 = sum(Fraction(x) for x in ys); S2 = sum(Fraction(x)*Fraction(x) for x in ys)
vp = (n*S2 - S1*S1) / (n*n); vs = (n*S2 - S1*S1) / (n*(n-1))
print("mean4", float(S1/n).hex(), "vp4", float(vp).hex(), "vs4", float(vs).hex(), "sp4", dsqrt(vp).hex(), "ss4", dsqrt(vs).hex())
print(wide[:3], narrow[:3], xs[:3], ys[:2])
big = [-x for x in wide if abs(x) >= 2.0**477]
cw = wide + big
print("cancel_wide", len(big), math.fsum(cw).hex(), "naive", sum(cw).hex())
