/* The NWM recurrence and its adjoint on the CPU, one image at a time (twi_core.models._native): for few channels
 * (C <= 4, the Tetrominoes, MNIST and Polygons NWMs) row by row, for many (C a multiple of 8, the Multi-MNIST NWM's 16)
 * register-blocked over output channels (the "wide path" below).
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
 *
 * At C = 16 (128x128) a step is 2304 multiply-adds per pixel, and torch spends it in mkldnn's NCHW convolution
 * (~26 GFLOP/s on one core of the development CPU) plus ~10 passes of pointwise ops over a 1 MB state per image; the
 * wide path fuses the pointwise update into the row loop and runs the coupling from a haloed copy of the state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* Denormals flushed to zero (FTZ) and read as zero (DAZ) while a kernel runs, the caller's mode restored after. A
 * damped oscillator far from any input decays through the denormal range (|y| < 1.2e-38), where every multiply takes
 * a microcode assist: measured on the Multi-MNIST NWM (C = 16, 128x128, one image), a training step of the torch
 * path took 47.6 s with denormals and 3.95 s without. Values that small change nothing the model computes. */
#if defined(__SSE__)
typedef unsigned int twi_fpmode;
static inline twi_fpmode fast_fp_enter(void) {
    const twi_fpmode old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void fast_fp_leave(twi_fpmode old) { _mm_setcsr(old); }
#else
typedef int twi_fpmode;
static inline twi_fpmode fast_fp_enter(void) { return 0; }
static inline void fast_fp_leave(twi_fpmode old) { (void)old; }
#endif

#define TWI_MAX_C 64

/* The wide path (many channels, e.g. the Multi-MNIST NWM's C = 16 at 128x128): the coupling of one output row for all
 * output channels at once, register-blocked as TWI_OB output channels x TWI_VL pixels, so that each input vector loaded
 * feeds TWI_OB fused multiply-adds; the per-row kernels above load and store their accumulator row once per tap and
 * input channel, which at C = 16 makes them L1-bound. GCC/Clang vector extensions keep it portable: on AVX-512 a
 * vector is one zmm register, on AVX2 one ymm. Used when C is a multiple of TWI_OB and W of TWI_VL. */
#if defined(__AVX512F__)
#define TWI_VL 16
#else
#define TWI_VL 8
#endif
#define TWI_OB 8
typedef float twi_vec __attribute__((vector_size(TWI_VL * sizeof(float))));

static inline twi_vec vload(const float *p) {
    twi_vec v;
    memcpy(&v, p, sizeof v); /* an unaligned load */
    return v;
}

static inline void vstore(float *p, twi_vec v) { memcpy(p, &v, sizeof v); }

static inline int wide(int C, int W) { return C % TWI_OB == 0 && W % TWI_VL == 0 && C >= TWI_OB; }

/* Floats of scratch a call needs per thread: u (C H W), a haloed copy (C (H+2) (W+2)), one coupling row per channel
 * (C W), the rearranged weights (9 C^2), the weight gradient's vector accumulators (9 C^2 vectors, plus one vector of
 * slack to align them) and a second haloed copy (the adjoint keeps u's and y's). */
ptrdiff_t twi_nwm_scratch_floats(int C, int H, int W) {
    return (ptrdiff_t)C * H * W + (ptrdiff_t)C * (H + 2) * (W + 2) + (ptrdiff_t)C * W + 9 * (ptrdiff_t)C * C +
           (9 * (ptrdiff_t)C * C + 1) * TWI_VL + (ptrdiff_t)C * (H + 2) * (W + 2);
}

/* The first vector-aligned address at or after p. */
static inline twi_vec *align_vec(float *p) {
    const uintptr_t a = (uintptr_t)p, m = sizeof(twi_vec) - 1;
    return (twi_vec *)((a + m) & ~m);
}

/* P (C, H+2, W+2) <- x (C, H, W) with a periodic halo of one pixel: P[c][h + 1][w + 1] = x[c][h][w]. */
static void pad_periodic(float *restrict P, const float *restrict x, int C, int H, int W) {
    const int Wp = W + 2;
    for (int c = 0; c < C; ++c) {
        const float *xc = x + (ptrdiff_t)c * H * W;
        float *pc = P + (ptrdiff_t)c * (H + 2) * Wp;
        for (int hp = 0; hp < H + 2; ++hp) {
            const float *src = xc + (ptrdiff_t)((hp + H - 1) % H) * W;
            float *dst = pc + (ptrdiff_t)hp * Wp;
            dst[0] = src[W - 1];
            memcpy(dst + 1, src, sizeof(float) * W);
            dst[W + 1] = src[0];
        }
    }
}

/* out[o][w] = sum_{i, a, c} k[((i * 3 + a) * 3 + c) * C + o] P[i][h + a][w + c], every output channel o of row h.
 * k is the kernel rearranged input-channel-and-tap major, output channel minor, so TWI_OB weights are adjacent. */
static void conv_row_wide(float *restrict out, const float *restrict P, const float *restrict k, int C, int H, int W,
                          int h) {
    const int Wp = W + 2;
    const ptrdiff_t plane = (ptrdiff_t)(H + 2) * Wp;
    for (int w0 = 0; w0 < W; w0 += TWI_VL)
        for (int o0 = 0; o0 < C; o0 += TWI_OB) {
            twi_vec acc[TWI_OB];
            for (int j = 0; j < TWI_OB; ++j) acc[j] = (twi_vec){0};
            for (int i = 0; i < C; ++i)
                for (int a = 0; a < 3; ++a) {
                    const float *r = P + i * plane + (ptrdiff_t)(h + a) * Wp + w0;
                    const float *kk = k + (ptrdiff_t)(i * 3 + a) * 3 * C + o0;
                    for (int c = 0; c < 3; ++c) {
                        const twi_vec v = vload(r + c);
                        for (int j = 0; j < TWI_OB; ++j) acc[j] += kk[c * C + j] * v;
                    }
                }
            for (int j = 0; j < TWI_OB; ++j) vstore(out + (ptrdiff_t)(o0 + j) * W + w0, acc[j]);
        }
}

/* g[((o C + i) 3 + a) 3 + c] += sum_{h, w} u[o][h][w] P[i][h + a][w + c]: one step's weight gradient against the
 * haloed state P, with u read from its haloed copy U (u[o][h][w] = U[o][h + 1][w + 1]; there the planes lie
 * (H+2)(W+2) floats apart, not a multiple of 4 KB, so the planes a block reads do not share L1 cache sets).
 * Register block: TWI_WG_OB output channels x 3 column taps for one (i, a), TWI_WG_OB + 3 vector loads per 3 TWI_WG_OB
 * multiply-adds. That many u loads per multiply-add must come from L1, so the image is swept in tiles of TWI_WG_ROWS
 * rows with the output-channel block outermost: its u rows (8 planes x 4 rows, 17 KB) stay in L1 while every (i, a)
 * passes over them. Each block's partial sums go to a vector accumulator per weight (gv: 9 C^2 vectors), reduced
 * across lanes, in double, once per call. (Sweeping the whole image per block, or (i, a) outermost, ran at a third
 * of the speed: the u rows then came from L2 or L3.) */
#define TWI_WG_ROWS 4
#ifndef TWI_WG_OB
#if TWI_VL == 16
#define TWI_WG_OB 8 /* 24 accumulators + 4 operands: AVX-512 has 32 vector registers */
#else
#define TWI_WG_OB 4 /* 12 + 4: AVX2 has 16 */
#endif
#endif
static void weight_grad_wide(double *restrict g, const float *restrict U, const float *restrict P, int C, int H,
                             int W, twi_vec *restrict gv) {
    const int Wp = W + 2;
    const ptrdiff_t plane = (ptrdiff_t)(H + 2) * Wp;
    for (int q = 0; q < 9 * C * C; ++q) gv[q] = (twi_vec){0};
    for (int h0 = 0; h0 < H; h0 += TWI_WG_ROWS) {
        const int h1 = h0 + TWI_WG_ROWS < H ? h0 + TWI_WG_ROWS : H;
        for (int o0 = 0; o0 < C; o0 += TWI_WG_OB)
            for (int i = 0; i < C; ++i)
                for (int a = 0; a < 3; ++a) {
                    twi_vec acc[TWI_WG_OB][3];
                    for (int j = 0; j < TWI_WG_OB; ++j) acc[j][0] = acc[j][1] = acc[j][2] = (twi_vec){0};
                    for (int h = h0; h < h1; ++h) {
                        const float *r = P + i * plane + (ptrdiff_t)(h + a) * Wp;
                        const float *ur = U + (ptrdiff_t)o0 * plane + (ptrdiff_t)(h + 1) * Wp + 1;
                        for (int w0 = 0; w0 < W; w0 += TWI_VL) {
                            const twi_vec y0 = vload(r + w0), y1 = vload(r + w0 + 1), y2 = vload(r + w0 + 2);
                            for (int j = 0; j < TWI_WG_OB; ++j) {
                                const twi_vec uv = vload(ur + j * plane + w0);
                                acc[j][0] += uv * y0;
                                acc[j][1] += uv * y1;
                                acc[j][2] += uv * y2;
                            }
                        }
                    }
                    for (int j = 0; j < TWI_WG_OB; ++j)
                        for (int c = 0; c < 3; ++c) gv[(((o0 + j) * C + i) * 3 + a) * 3 + c] += acc[j][c];
                }
    }
    for (int q = 0; q < 9 * C * C; ++q) {
        double sum = 0.0;
        for (int l = 0; l < TWI_VL; ++l) sum += gv[q][l];
        g[q] += sum;
    }
}

/* kf[((i 3 + a) 3 + c) C + o] = W[o][i][a][c] (forward); kb[((o 3 + a) 3 + c) C + i] = W[o][i][2 - a][2 - c], the
 * flipped, transposed kernel of the adjoint's coupling gy[i] += sum W[o][i][a][c] u[o][h + 1 - a][w + 1 - c]. */
static void arrange_kernel(float *restrict k, const float *restrict weight, int C, int adjoint) {
    for (int o = 0; o < C; ++o)
        for (int i = 0; i < C; ++i)
            for (int a = 0; a < 3; ++a)
                for (int c = 0; c < 3; ++c) {
                    const float v = weight[((o * C + i) * 3 + a) * 3 + c];
                    if (adjoint)
                        k[((o * 3 + (2 - a)) * 3 + (2 - c)) * C + i] = v;
                    else
                        k[((i * 3 + a) * 3 + c) * C + o] = v;
                }
}

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

/* n forward steps for images [b0, b1). ybuf, zbuf: (n + 1, B, C, H, W), slot 0 given; sbuf: (n, B, C, H, W);
 * scratch: twi_nwm_scratch_floats(C, H, W) floats, this call's own. */
static int nwm_forward(float *ybuf, float *zbuf, float *sbuf, const float *omega, const float *alpha,
                       const float *weight, float *scratch, int n, int B, int C, int H, int W, float dt, int b0, int b1) {
    if (C < 1 || C > TWI_MAX_C || H < 3 || W < 3 || W > 4096) return -1;
    const ptrdiff_t hw = (ptrdiff_t)H * W, img = C * hw, slot = (ptrdiff_t)B * img;
    const int blocked = wide(C, W);
    float *P = scratch + img, *rowbuf = P + (ptrdiff_t)C * (H + 2) * (W + 2), *k = rowbuf + (ptrdiff_t)C * W;
    if (blocked) arrange_kernel(k, weight, C, 0);
    float acc[4096];
    for (int b = b0; b < b1; ++b) {
        const float *om = omega + b * img, *al = alpha + b * img;
        for (int t = 0; t < n; ++t) {
            const float *y = ybuf + t * slot + b * img, *z = zbuf + t * slot + b * img;
            float *yn = ybuf + (t + 1) * slot + b * img, *zn = zbuf + (t + 1) * slot + b * img;
            float *s = sbuf + t * slot + b * img;
            if (blocked) { /* the wide path: every output channel of a row at once, from the haloed state */
                pad_periodic(P, y, C, H, W);
                for (int h = 0; h < H; ++h) {
                    conv_row_wide(rowbuf, P, k, C, H, W, h);
                    for (int o = 0; o < C; ++o) {
                        const ptrdiff_t p = o * hw + h * W;
                        step_row(rowbuf + o * W, y + p, z + p, om + p, al + p, s + p, yn + p, zn + p, dt, W);
                    }
                }
                continue;
            }
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
 * place. g_weight: (C, C, 3, 3) doubles, accumulated. scratch: twi_nwm_scratch_floats(C, H, W) floats, this call's
 * own. */
static int nwm_adjoint(const float *ybuf, const float *zbuf, const float *sbuf, const float *omega,
                       const float *alpha, const float *weight, const float *inj, ptrdiff_t inj_t, ptrdiff_t inj_b,
                       ptrdiff_t inj_c, float *gy_all, float *gz_all, float *g_omega, float *g_alpha, double *g_weight,
                       float *scratch, int n, int B, int C, int H, int W, float dt, int b0, int b1) {
    if (C < 1 || C > TWI_MAX_C || H < 3 || W < 3 || W > 4096) return -1;
    const ptrdiff_t hw = (ptrdiff_t)H * W, img = C * hw, slot = (ptrdiff_t)B * img;
    float acc[4096];
    float *u = scratch;
    if (wide(C, W)) {
        float *P = scratch + img, *rows = P + (ptrdiff_t)C * (H + 2) * (W + 2), *k = rows + (ptrdiff_t)C * W;
        twi_vec *gv = align_vec(k + 9 * C * C);
        float *Py = (float *)(gv + 9 * C * C); /* y_t haloed; P keeps u haloed */
        arrange_kernel(k, weight, C, 1);
        for (int b = b0; b < b1; ++b) {
            const float *om = omega + b * img, *al = alpha + b * img;
            float *gy = gy_all + b * img, *gz = gz_all + b * img, *gom = g_omega + b * img, *gal = g_alpha + b * img;
            for (int t = n - 1; t >= 0; --t) {
                const float *y = ybuf + t * slot + b * img, *z = zbuf + t * slot + b * img;
                const float *s = sbuf + t * slot + b * img;
                for (int c = 0; c < C; ++c) {
                    const ptrdiff_t p = c * hw;
                    adjoint_plane(inj ? inj + t * inj_t + b * inj_b + c * inj_c : NULL, gy + p, gz + p, u + p,
                                  gom + p, gal + p, y + p, z + p, s + p, om + p, al + p, dt, hw);
                }
                pad_periodic(P, u, C, H, W); /* the transposed coupling reads u with its halo */
                for (int h = 0; h < H; ++h) {
                    conv_row_wide(rows, P, k, C, H, W, h);
                    for (int i = 0; i < C; ++i) {
                        float *g = gy + i * hw + h * W;
                        const float *r = rows + i * W;
                        for (int w = 0; w < W; ++w) g[w] += r[w];
                    }
                }
                pad_periodic(Py, y, C, H, W); /* the weight gradient reads y_t with its halo, and u from P */
                weight_grad_wide(g_weight, P, Py, C, H, W, gv);
            }
        }
        return 0;
    }
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

/* The channel mixing of the Multi-MNIST NWM's head (engine.nwm_mixed): the head's first layer folded into the linear
 * readout is a (P, T, C) map M applied to the whole state sequence,
 *
 *     out[p][b][x] += sum_{t, c} M[p][t][c] y_t[b][c][x]                       (absorb, forward)
 *     inj[t][b][c][x] = sum_p M[p][t][c] g[p][b][x],                            (adjoint: the gradient into y_t)
 *     gM[p][t][c] += sum_{b, x} g[p][b][x] y_t[b][c][x]                         (adjoint: the gradient of M)
 *
 * over the pixels x of an H*W plane. As torch calls these are 3 x T x B small GEMMs (P = 32, C = 16: K or N of 16)
 * that ran at 15-25 GFLOP/s on the development CPU, with a copy each. Here each is register-blocked like the
 * coupling: TWI_MIX_OB rows of the output x one vector of pixels, each vector loaded feeding TWI_MIX_OB multiply-adds,
 * and the gradient of M as TWI_GM_P x TWI_GM_C (p, c) accumulators. They sweep the plane in tiles of TWI_MIX_TILE
 * pixels, so that the accumulator tile (out, or g) stays in L2 while every step passes over it. Measured on the
 * (loaded) AMD EPYC, one thread, P = 32, C = 16, 128 x 128: blocks of 16 ran at 82 (absorb) and 155 (inj) GFLOP/s
 * against 68 and 112 for blocks of 8, the gradient of M at 85 against 68 for 4 x 4. AVX2, with half the vector
 * registers, gets blocks of 8 and 2 x 4. Requires P and C multiples of TWI_MIX_OB and H*W of TWI_VL (mix_supported in
 * _native.py asks for multiples of 16). */
#define TWI_MIX_TILE 2048
#if TWI_VL == 16
#define TWI_MIX_OB 16 /* 16 accumulators + operands: AVX-512 has 32 vector registers */
#define TWI_GM_P 2
#define TWI_GM_C 8
#else
#define TWI_MIX_OB 8 /* AVX2 has 16: half the blocks, so that nothing spills */
#define TWI_GM_P 2
#define TWI_GM_C 4
#endif
static inline int mix_tile(ptrdiff_t hw) { return hw < TWI_MIX_TILE ? (int)hw : TWI_MIX_TILE; }

/* out (P, B, hw) += M applied to ys (n, B, C, hw), for images [b0, b1). m: (n, C, P), i.e. M[:, t, :] transposed
 * per step, so that TWI_MIX_OB output weights of one (t, c) are adjacent. */
static void mix_absorb(float *restrict out, const float *restrict ys, const float *restrict m, int n, int B, int C,
                       ptrdiff_t hw, int P, int b0, int b1) {
    const ptrdiff_t img = C * hw, slot = (ptrdiff_t)B * img, pstride = (ptrdiff_t)B * hw;
    for (int b = b0; b < b1; ++b)
        for (ptrdiff_t x0 = 0; x0 < hw; x0 += mix_tile(hw)) {
            const ptrdiff_t x1 = x0 + mix_tile(hw) < hw ? x0 + mix_tile(hw) : hw;
            for (int t = 0; t < n; ++t) {
                const float *y = ys + t * slot + b * img;
                const float *mt = m + (ptrdiff_t)t * C * P;
                for (int p0 = 0; p0 < P; p0 += TWI_MIX_OB)
                    for (ptrdiff_t x = x0; x < x1; x += TWI_VL) {
                        float *o = out + (ptrdiff_t)p0 * pstride + b * hw + x;
                        twi_vec acc[TWI_MIX_OB];
                        for (int j = 0; j < TWI_MIX_OB; ++j) acc[j] = vload(o + j * pstride);
                        for (int c = 0; c < C; ++c) {
                            const twi_vec v = vload(y + c * hw + x);
                            const float *mc = mt + c * P + p0;
                            for (int j = 0; j < TWI_MIX_OB; ++j) acc[j] += mc[j] * v;
                        }
                        for (int j = 0; j < TWI_MIX_OB; ++j) vstore(o + j * pstride, acc[j]);
                    }
            }
        }
}

/* The adjoint of mix_absorb for images [b0, b1): inj (n, B, C, hw) <- the gradient reaching each state (written, not
 * accumulated), and gm (n, P, C) doubles += the gradient of M (this call's partial sum). g: (P, B, hw), the gradient
 * of out; mt: (n, P, C), M permuted so that TWI_MIX_OB channel weights of one (t, p) are adjacent. */
static void mix_adjoint(float *restrict inj, double *restrict gm, const float *restrict g, const float *restrict ys,
                        const float *restrict mt, int n, int B, int C, ptrdiff_t hw, int P, int b0, int b1) {
    const ptrdiff_t img = C * hw, slot = (ptrdiff_t)B * img, pstride = (ptrdiff_t)B * hw;
    for (int b = b0; b < b1; ++b)
        for (ptrdiff_t x0 = 0; x0 < hw; x0 += mix_tile(hw)) {
            const ptrdiff_t x1 = x0 + mix_tile(hw) < hw ? x0 + mix_tile(hw) : hw;
            const float *gb = g + b * hw;
            for (int t = 0; t < n; ++t) {
                const float *y = ys + t * slot + b * img;
                float *in = inj + t * slot + b * img;
                const float *m = mt + (ptrdiff_t)t * P * C;
                for (int c0 = 0; c0 < C; c0 += TWI_MIX_OB) /* inj: TWI_MIX_OB channels x one vector, summed over p */
                    for (ptrdiff_t x = x0; x < x1; x += TWI_VL) {
                        twi_vec acc[TWI_MIX_OB];
                        for (int j = 0; j < TWI_MIX_OB; ++j) acc[j] = (twi_vec){0};
                        for (int p = 0; p < P; ++p) {
                            const twi_vec v = vload(gb + p * pstride + x);
                            const float *mp = m + p * C + c0;
                            for (int j = 0; j < TWI_MIX_OB; ++j) acc[j] += mp[j] * v;
                        }
                        for (int j = 0; j < TWI_MIX_OB; ++j) vstore(in + (ptrdiff_t)(c0 + j) * hw + x, acc[j]);
                    }
                /* gM: TWI_GM_P x TWI_GM_C (p, c) accumulators over the tile, lanes summed in double */
                for (int p0 = 0; p0 < P; p0 += TWI_GM_P)
                    for (int c0 = 0; c0 < C; c0 += TWI_GM_C) {
                        twi_vec acc[TWI_GM_P][TWI_GM_C];
                        for (int i = 0; i < TWI_GM_P; ++i)
                            for (int j = 0; j < TWI_GM_C; ++j) acc[i][j] = (twi_vec){0};
                        for (ptrdiff_t x = x0; x < x1; x += TWI_VL) {
                            twi_vec gv[TWI_GM_P], yv[TWI_GM_C];
                            for (int i = 0; i < TWI_GM_P; ++i) gv[i] = vload(gb + (p0 + i) * pstride + x);
                            for (int j = 0; j < TWI_GM_C; ++j) yv[j] = vload(y + (ptrdiff_t)(c0 + j) * hw + x);
                            for (int i = 0; i < TWI_GM_P; ++i)
                                for (int j = 0; j < TWI_GM_C; ++j) acc[i][j] += gv[i] * yv[j];
                        }
                        for (int i = 0; i < TWI_GM_P; ++i)
                            for (int j = 0; j < TWI_GM_C; ++j) {
                                double sum = 0.0;
                                for (int l = 0; l < TWI_VL; ++l) sum += acc[i][j][l];
                                gm[((ptrdiff_t)t * P + p0 + i) * C + c0 + j] += sum;
                            }
                    }
            }
        }
}

/* The exported entry points: the kernels above with denormals flushed (see fast_fp_enter). */
int twi_nwm_forward(float *ybuf, float *zbuf, float *sbuf, const float *omega, const float *alpha,
                    const float *weight, float *scratch, int n, int B, int C, int H, int W, float dt, int b0, int b1) {
    const twi_fpmode mode = fast_fp_enter();
    const int code = nwm_forward(ybuf, zbuf, sbuf, omega, alpha, weight, scratch, n, B, C, H, W, dt, b0, b1);
    fast_fp_leave(mode);
    return code;
}

int twi_nwm_adjoint(const float *ybuf, const float *zbuf, const float *sbuf, const float *omega, const float *alpha,
                    const float *weight, const float *inj, ptrdiff_t inj_t, ptrdiff_t inj_b, ptrdiff_t inj_c,
                    float *gy_all, float *gz_all, float *g_omega, float *g_alpha, double *g_weight, float *scratch,
                    int n, int B, int C, int H, int W, float dt, int b0, int b1) {
    const twi_fpmode mode = fast_fp_enter();
    const int code = nwm_adjoint(ybuf, zbuf, sbuf, omega, alpha, weight, inj, inj_t, inj_b, inj_c, gy_all, gz_all,
                                 g_omega, g_alpha, g_weight, scratch, n, B, C, H, W, dt, b0, b1);
    fast_fp_leave(mode);
    return code;
}

int twi_mix_absorb(float *out, const float *ys, const float *m, int n, int B, int C, ptrdiff_t hw, int P, int b0,
                   int b1) {
    if (C % TWI_MIX_OB || P % TWI_MIX_OB || hw % TWI_VL || n < 1) return -1;
    const twi_fpmode mode = fast_fp_enter();
    mix_absorb(out, ys, m, n, B, C, hw, P, b0, b1);
    fast_fp_leave(mode);
    return 0;
}

int twi_mix_adjoint(float *inj, double *gm, const float *g, const float *ys, const float *mt, int n, int B, int C,
                    ptrdiff_t hw, int P, int b0, int b1) {
    if (C % TWI_MIX_OB || P % TWI_MIX_OB || hw % TWI_VL || n < 1) return -1;
    const twi_fpmode mode = fast_fp_enter();
    mix_adjoint(inj, gm, g, ys, mt, n, B, C, hw, P, b0, b1);
    fast_fp_leave(mode);
    return 0;
}
