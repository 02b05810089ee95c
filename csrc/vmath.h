/* vmath.h - elementwise tanh / sigmoid written so that compilers vectorise the loops that call
 * them (no branches, no libm calls), with their accuracy stated and tested.
 *
 * float32 tanh: the rational approximation of Eigen (generic_fast_tanh_float), exactly +-1
 *   beyond +-7.9053111 (where Eigen clamps the input). Max abs error against float64 tanh of the
 *   same input, measured over [-20, 20] in steps of 1e-5: 4.0e-7 (about 7 float32 ulps near
 *   +-1).
 * float32 sigmoid: 0.5 + 0.5 * tanh(x / 2); max abs error 2.3e-7.
 * float64 tanh: sign(x) * (1 - 2 / (exp(2|x|) + 1)) with a degree-13 exp polynomial after
 *   Cody-Waite range reduction, a Taylor series below |x| = 2^-5; max abs error 2.3e-16
 *   (relative 6.4e-15).
 * float64 sigmoid: 1 / (1 + exp(-x)) via the same exp of -|x| clamped at -700; max abs error
 *   2.3e-16.
 * tests/test_vmath.py checks these bounds through the public API.
 * The float32 division is the hardware's: a reciprocal estimated from the bits and refined by
 * three Newton steps instead (7 multiply-adds, no divider) measured 0.98x on LSTM, 1.00x on GRU
 * and 0.99x on SimpleRNN (8,50,128,128) at 1 thread (AVX-512, 2-vCPU Xeon, processes
 * alternating): their element-wise loops wait on their multiply-add ports and their chains, not
 * on the divider.
 * NaN propagates in every function.
 * The selects are compare-and-select: GCC if-converts them into vector blends only under
 * -fno-trapping-math (setup.py, Makefile) when the target has no AVX-512 masks; without it the
 * AVX2 and SSE2 loops stay scalar (same results, about 1.5x slower gated cells). */
#ifndef CRNN_VMATH_H
#define CRNN_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float crnn__tanh_f32(float x)
{
    const float c = 7.90531110763549805f;
    const float a1 = 4.89352455891786e-03f, a3 = 6.37261928875436e-04f,
                a5 = 1.48572235717979e-05f, a7 = 5.12229709037114e-08f,
                a9 = -8.60467152213735e-11f, a11 = 2.00018790482477e-13f,
                a13 = -2.76076847742355e-16f;
    const float b0 = 4.89352518554385e-03f, b2 = 2.26843463243900e-03f,
                b4 = 1.18534705686654e-04f, b6 = 1.19825839466702e-06f;
    /* The rational runs on x itself and the result is replaced by +-1 beyond +-c (NaN fails
     * both tests and stays NaN; far beyond c the rational overflows to inf or NaN, replaced
     * too). Written as Eigen's clamp of the input, GCC threads the clamped paths to constants
     * and vectorises this same select plus the clamps' compares and masks, about 6 vector
     * operations more per tanh: an LSTM's element-wise part (five a unit) took 1.12x as long
     * (AVX2, Zen 3, steps of 16 rows by 128 units). The same bits either way (compared on
     * random models and on a sweep of [-20, 20] with +-inf and NaN, AVX2 and SSE2). */
    const float v = x;
    float v2, p, q, r;
    v2 = v * v;
    p = a13;
    p = p * v2 + a11;
    p = p * v2 + a9;
    p = p * v2 + a7;
    p = p * v2 + a5;
    p = p * v2 + a3;
    p = p * v2 + a1;
    p = p * v;
    q = b6;
    q = q * v2 + b4;
    q = q * v2 + b2;
    q = q * v2 + b0;
    r = p / q;
    r = x > c ? 1.0f : r;
    return x < -c ? -1.0f : r;
}

static inline float crnn__sigmoid_f32(float x) { return 0.5f + 0.5f * crnn__tanh_f32(0.5f * x); }

/* exp(y) for y in [-708, 709], vectorisable: y = n ln2 + r, |r| <= ln2 / 2, 2^n from bits. */
static inline double crnn__exp_f64(double y)
{
    const double log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01,
                 ln2_lo = 1.90821492927058770002e-10, shift = 6755399441055744.0; /* 1.5 * 2^52 */
    double kd = y * log2e + shift;
    double n = kd - shift;
    double r = (y - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0; /* Taylor to r^13 / 13!: error < 1e-17 relative */
    uint64_t kbits, sbits;
    double scale;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    memcpy(&kbits, &kd, sizeof kbits);
    /* the low bits of kd hold n; (n + 1023) << 52 is 2^n (the high bits shift out) */
    sbits = (kbits + 1023u) << 52;
    memcpy(&scale, &sbits, sizeof scale);
    return p * scale;
}

static inline double crnn__tanh_f64(double x)
{
    double ax = x < 0 ? -x : x;
    double a = ax > 20.0 ? 20.0 : ax; /* tanh(20) rounds to 1 in double */
    double e = crnn__exp_f64(2.0 * a);
    double t = 1.0 - 2.0 / (e + 1.0);
    double a2 = a * a;
    /* below 2^-5 the subtraction above loses relative accuracy: use the Taylor series */
    double s = a * (1.0 + a2 * (-1.0 / 3 + a2 * (2.0 / 15 + a2 * (-17.0 / 315 + a2 * (62.0 / 2835)))));
    t = a < 0.03125 ? s : t;
    t = x < 0 ? -t : t;
    return x != x ? x : t;
}

static inline double crnn__sigmoid_f64(double x)
{
    double ax = x < 0 ? -x : x;
    double e = crnn__exp_f64(ax > 700.0 ? -700.0 : -ax); /* exp(-|x|) in (0, 1] */
    double s = (x < 0 ? e : 1.0) / (1.0 + e);
    return x != x ? x : s;
}

#endif
