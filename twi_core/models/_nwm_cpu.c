/* The NWM recurrence and its adjoint for few channels on the CPU, one image at a time (twi_core.models._native).
 *
 * Forward, for every image b in [b0, b1) and step t = 0..n-1 (slot t -> slot t+1 of the (n+1, B, C, H, W) buffers):
 *
 *     s_t     = tanh(W_y * y_t)                 (3x3 circular correlation, C -> C channels)
 *     z_{t+1} = z_t + dt (s_t - omega y_t - alpha z_t)
 *     y_{t+1} = y_t + dt z_{t+1}
 *
 * Backward, steps t = n-1..0, with gy, gz the gradients reaching y_{t+1}, z_{t+1} (gy first receives the injected
 * gradient of y_{t+1}):
 *
 *     v = dt (gz + dt gy),   u = v (1 - s_t^2)
 *     gy <- gy - omega v + W_y^T * u,   gz <- gz + dt gy - alpha v
 *     g_omega -= v y_t,   g_alpha -= v z_t,   g_W[o, i, a, c] += sum_{h, w} u[o, h, w] y_t[i, h + a - 1, w + c - 1]
 *
 * Why here and not in torch: at the Tetrominoes size (C = 2, 64x64) one step is a few MFLOP, and torch spends it in
 * ~10 separate passes over memory plus a 2-channel convolution that mkldnn runs at ~8 GFLOP/s. One image's state
 * (C x H x W floats, 32 KB) stays in L1/L2 for all its steps here. Images are independent, so threads take disjoint
 * ranges of the batch and never synchronise. Every inner loop runs along a row (unit stride) and vectorises; the
 * circular wrap is handled at the two ends of each row. float32 only: the Python side uses torch otherwise.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TWI_MAX_C 4

/* exp(x) for x in [-20, 0]: 2^k * e^r with |r| <= ln2 / 2 and a degree-7 Taylor polynomial (error < 1e-8). */
static inline float twi_exp_neg(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723212e-6f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding and subtracting it rounds to the nearest integer */
    float k = (x * log2e + shifter) - shifter;
    float r = (x - k * ln2_hi) - k * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23; /* 2^k, k in [-29, 0]: a normal float */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* tanh(x), branch-free so that it vectorises: the odd Taylor series for |x| < 0.3 (terms through x^13), else
 * (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.55, which has no cancellation. Max relative error ~2e-7 (tested);
 * tanh(+-inf) = +-1, tanh(NaN) = NaN. */
static inline float twi_tanh(float x) {
    float ax = __builtin_fabsf(x);
    float x2 = x * x;
    float series = -21844.0f / 6081075.0f;
    series = series * x2 + 1382.0f / 155925.0f;
    series = series * x2 - 62.0f / 2835.0f;
    series = series * x2 + 17.0f / 315.0f;
    series = series * x2 - 2.0f / 15.0f;
    series = series * x2 + 1.0f / 3.0f;
    series = ax - ax * x2 * series;
    float e = twi_exp_neg(-2.0f * (ax < 10.0f ? ax : 10.0f));
    float large = (1.0f - e) / (1.0f + e);
    float t = ax < 0.3f ? series : large;
    return ax == ax ? __builtin_copysignf(t, x) : x; /* NaN stays NaN (the branches above would give +-1) */
}

/* acc[w] += k[0] row[w - 1] + k[1] row[w] + k[2] row[w + 1] on a periodic row of length W >= 3. */
static inline void row_taps(float *restrict acc, const float *restrict row, const float *k, int W) {
    const float k0 = k[0], k1 = k[1], k2 = k[2];
    acc[0] += k0 * row[W - 1] + k1 * row[0] + k2 * row[1];
    for (int w = 1; w < W - 1; ++w) acc[w] += k0 * row[w - 1] + k1 * row[w] + k2 * row[w + 1];
    acc[W - 1] += k0 * row[W - 2] + k1 * row[W - 1] + k2 * row[0];
}

/* sum_w u[w] row[w + shift] on a periodic row, shift in {-1, 0, 1}, in double. */
static inline double row_dot(const float *restrict u, const float *restrict row, int shift, int W) {
    float s = 0.0f;
    if (shift == 0) {
#pragma omp simd reduction(+ : s)
        for (int w = 0; w < W; ++w) s += u[w] * row[w];
    } else if (shift < 0) {
        s = u[0] * row[W - 1];
#pragma omp simd reduction(+ : s)
        for (int w = 1; w < W; ++w) s += u[w] * row[w - 1];
    } else {
        s = u[W - 1] * row[0];
#pragma omp simd reduction(+ : s)
        for (int w = 0; w < W - 1; ++w) s += u[w] * row[w + 1];
    }
    return (double)s;
}

/* One row of the forward update from its coupling acc: s = tanh(acc), z' = z + dt (s - om y - al z), y' = y + dt z'. */
static inline void step_row(const float *restrict acc, const float *restrict y, const float *restrict z,
                            const float *restrict om, const float *restrict al, float *restrict s, float *restrict yn,
                            float *restrict zn, float dt, int W) {
    for (int w = 0; w < W; ++w) {
        float sv = twi_tanh(acc[w]);
        float znew = z[w] + dt * (sv - om[w] * y[w] - al[w] * z[w]);
        s[w] = sv;
        zn[w] = znew;
        yn[w] = y[w] + dt * znew;
    }
}

/* The pointwise part of one adjoint step on a plane of m pixels (g_in: the injected gradient, or NULL). */
static inline void adjoint_plane(const float *restrict g_in, float *restrict gy, float *restrict gz,
                                 float *restrict u, float *restrict gom, float *restrict gal,
                                 const float *restrict y, const float *restrict z, const float *restrict s,
                                 const float *restrict om, const float *restrict al, float dt, ptrdiff_t m) {
    if (g_in)
        for (ptrdiff_t p = 0; p < m; ++p) gy[p] += g_in[p];
    for (ptrdiff_t p = 0; p < m; ++p) {
        float gzv = gz[p] + dt * gy[p];
        float v = dt * gzv;
        u[p] = v * (1.0f - s[p] * s[p]);
        gy[p] -= om[p] * v;
        gz[p] = gzv - al[p] * v;
        gom[p] -= v * y[p];
        gal[p] -= v * z[p];
    }
}

/* n forward steps for images [b0, b1). ybuf, zbuf: (n + 1, B, C, H, W), slot 0 given; sbuf: (n, B, C, H, W). */
int twi_nwm_forward(float *ybuf, float *zbuf, float *sbuf, const float *omega, const float *alpha,
                    const float *weight, int n, int B, int C, int H, int W, float dt, int b0, int b1) {
    if (C < 1 || C > TWI_MAX_C || H < 3 || W < 3 || W > 4096) return -1;
    const ptrdiff_t hw = (ptrdiff_t)H * W, img = C * hw, slot = (ptrdiff_t)B * img;
    float acc[4096];
    for (int b = b0; b < b1; ++b) {
        const float *om = omega + b * img, *al = alpha + b * img;
        for (int t = 0; t < n; ++t) {
            const float *y = ybuf + t * slot + b * img, *z = zbuf + t * slot + b * img;
            float *yn = ybuf + (t + 1) * slot + b * img, *zn = zbuf + (t + 1) * slot + b * img;
            float *s = sbuf + t * slot + b * img;
            for (int o = 0; o < C; ++o) {
                for (int h = 0; h < H; ++h) {
                    const int rows[3] = {(h + H - 1) % H, h, (h + 1) % H};
                    memset(acc, 0, sizeof(float) * W);
                    for (int i = 0; i < C; ++i)
                        for (int a = 0; a < 3; ++a)
                            row_taps(acc, y + i * hw + rows[a] * W, weight + ((o * C + i) * 3 + a) * 3, W);
                    const ptrdiff_t p = o * hw + h * W;
                    step_row(acc, y + p, z + p, om + p, al + p, s + p, yn + p, zn + p, dt, W);
                }
            }
        }
    }
    return 0;
}

/* n adjoint steps (t = n-1..0) for images [b0, b1). inj: the gradient injected into y_{t+1}, element (t, b, c, h, w)
 * at inj + t*inj_t + b*inj_b + c*inj_c + h*W + w (NULL: none). gy, gz, g_omega, g_alpha: (B, C, H, W), updated in
 * place. g_weight: (C, C, 3, 3) doubles, accumulated. scratch: C*H*W floats, this call's own. */
int twi_nwm_adjoint(const float *ybuf, const float *zbuf, const float *sbuf, const float *omega, const float *alpha,
                    const float *weight, const float *inj, ptrdiff_t inj_t, ptrdiff_t inj_b, ptrdiff_t inj_c,
                    float *gy_all, float *gz_all, float *g_omega, float *g_alpha, double *g_weight, float *scratch,
                    int n, int B, int C, int H, int W, float dt, int b0, int b1) {
    if (C < 1 || C > TWI_MAX_C || H < 3 || W < 3 || W > 4096) return -1;
    const ptrdiff_t hw = (ptrdiff_t)H * W, img = C * hw, slot = (ptrdiff_t)B * img;
    float acc[4096];
    float *u = scratch;
    for (int b = b0; b < b1; ++b) {
        const float *om = omega + b * img, *al = alpha + b * img;
        float *gy = gy_all + b * img, *gz = gz_all + b * img, *gom = g_omega + b * img, *gal = g_alpha + b * img;
        for (int t = n - 1; t >= 0; --t) {
            const float *y = ybuf + t * slot + b * img, *z = zbuf + t * slot + b * img, *s = sbuf + t * slot + b * img;
            /* Pass 1, pointwise: u, and everything but the transposed coupling. */
            for (int c = 0; c < C; ++c) {
                const ptrdiff_t p = c * hw;
                adjoint_plane(inj ? inj + t * inj_t + b * inj_b + c * inj_c : NULL, gy + p, gz + p, u + p, gom + p,
                              gal + p, y + p, z + p, s + p, om + p, al + p, dt, hw);
            }
            /* Pass 2: gy[i, h, w] += sum_{o, a, c} W[o, i, a, c] u[o, h + 1 - a, w + 1 - c], i.e. the taps of the
             * flipped kernel; and the weight gradient against y_t. */
            for (int i = 0; i < C; ++i) {
                for (int h = 0; h < H; ++h) {
                    memset(acc, 0, sizeof(float) * W);
                    for (int o = 0; o < C; ++o) {
                        for (int a = 0; a < 3; ++a) {
                            const float *k = weight + ((o * C + i) * 3 + a) * 3;
                            const float flipped[3] = {k[2], k[1], k[0]};
                            row_taps(acc, u + o * hw + ((h + 1 - a + H) % H) * W, flipped, W);
                        }
                    }
                    float *g = gy + i * hw + h * W;
                    for (int w = 0; w < W; ++w) g[w] += acc[w];
                }
            }
            for (int o = 0; o < C; ++o)
                for (int i = 0; i < C; ++i)
                    for (int a = 0; a < 3; ++a)
                        for (int h = 0; h < H; ++h) {
                            const float *ur = u + o * hw + h * W, *yr = y + i * hw + ((h + a - 1 + H) % H) * W;
                            double *gw = g_weight + ((o * C + i) * 3 + a) * 3;
                            gw[0] += row_dot(ur, yr, -1, W);
                            gw[1] += row_dot(ur, yr, 0, W);
                            gw[2] += row_dot(ur, yr, 1, W);
                        }
        }
    }
    return 0;
}
