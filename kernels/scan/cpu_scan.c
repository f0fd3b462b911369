/* Selective scan, fused CPU kernel (float32): the "cpu" backend. cpu.py compiles this file on first use and calls it
 * through ctypes; the contract (layouts, what is saved, what backward returns) is documented there.
 *
 * Dimension names: b batch . d channels . l length . n state size . T steps per checkpointed chunk .
 *                  DB channels per work item.
 *
 * Why a fused loop. The pure-PyTorch "chunked" backend makes 30-40 passes over the (b, d, l, n) state per forward and
 * backward (decays, their cumulative products, outer products, fix-ups, contractions), each a separate operator that
 * streams the state through memory. Here one work item owns DB channels of one batch row and walks time once,
 * keeping its (DB, n) state in registers/L1: h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t and y_t = <C_t, h_t> (paper eq.
 * 2a-2b, zero-order hold of eq. 4) cost one exp and a few multiply-adds per state element, vectorised over n. The
 * elementwise ends run in the same loop, vectorised over the block's channels: dt = softplus(delta + bias) before
 * the state update, out = (y + D u) silu(z) after it (and their derivatives in backward).
 * Backward (the paper's section 3.3.2 recomputation): the forward saves the state every T steps; backward recomputes
 * one chunk's decays and states into a small buffer and runs the adjoint recurrence
 *     g_t = C_t dy_t + a_{t+1} g_{t+1},   dx_t = g_t,   dlog a_t = g_t a_t h_{t-1},   dh_{-1} = a_0 g_0
 * backwards through it. Gradients that sum over channels (dB, dC) or over batch and time (dA) go to per-thread
 * buffers that cpu.py adds up, so no two threads ever write the same element.
 *
 * Threads take work items from one shared counter (dynamic scheduling): a thread that the OS deschedules (another
 * process is busy on the same core) simply takes fewer items, instead of holding up a static partition.
 *
 * Decays are floored at exp(-60) like the chunked backend (_log_floor): subnormals are 10-50x slower on x86. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t b, d, l, n, T, DB, nthreads;
    /* (b, d, l) float32 tensors in any layout: element (bi, c, t) of tensor X at X[bi*s[X][0] + c*s[X][1] + t*s[X][2]]
     * (the Mamba block's delta and z are (b, l, d) in memory, transposed views: read in place, no copy) */
    int64_t s[8][3];
    const float *u, *delta;      /* dt = delta + delta_bias, through softplus when `softplus` is set */
    const float *delta_bias, *D; /* (d,) or NULL */
    const float *z;              /* or NULL */
    int64_t softplus;
    const float *A; /* (d, n) */
    /* B and C: element (bi, t, channel c, k) at X[bi*sb + t*st + (c / dpg)*sg + k]; ti: time-invariant (d, n) */
    const float *B;
    int64_t B_sb, B_st, B_sg, B_dpg, B_ti;
    const float *C;
    int64_t C_sb, C_st, C_sg, C_dpg, C_ti;
    const uint8_t *reset; /* (b, l), 1 where a packed sequence starts (the decay there is 0); or NULL */
    const float *h0;      /* (b, d, n) */
    float *ckpt;          /* (b, ceil(l / T), d, n): the state before each chunk (written by forward) */
    float *out;           /* forward: (b, d, l), (<C, h> + D u) silu(z) */
    float *h_last;        /* forward: (b, d, n) */
    const float *dout;    /* backward: (b, d, l), or NULL (no gradient reaches the output) */
    const float *dh_last; /* backward: (b, d, n) */
    float *du, *ddelta, *dz; /* backward: (b, d, l) (dz when z is given) */
    double *dA;           /* backward: (nthreads, d, n), zeroed by the caller */
    double *dD, *dbias;   /* backward: (nthreads, d), zeroed by the caller */
    float *dB, *dC;       /* backward: (nthreads, size of B / C), zeroed by the caller */
    int64_t dB_size, dC_size;
    float *dh0;     /* backward: (b, d, n) */
    int64_t next;   /* the shared work counter */
    int64_t failed; /* set when a thread could not allocate its buffers */
} ScanArgs;

enum { U, DELTA, Z, OUT, DOUT, DU, DDELTA, DZ };
#define AT(a, X, bi, c, t) ((bi) * (a)->s[X][0] + (c) * (a)->s[X][1] + (t) * (a)->s[X][2])

#define LOG_FLOOR (-60.0f)

/* exp(x) for x in [LOG_FLOOR, 88]: 2^k e^r with |r| <= ln2/2, degree-7 Taylor polynomial (relative error < 1e-8
 * before rounding). Branch-free so that the loops over n vectorise. */
static inline float exp_clamped(float x) {
    x = x > LOG_FLOOR ? x : LOG_FLOOR;
    x = x < 88.0f ? x : 88.0f;
    /* k = round(x / ln 2): the argument is in [-87, 128] after the clamp, so truncating it + 128 floors it */
    const int32_t ki = (int32_t)(x * 1.44269504088896341f + 128.5f) - 128;
    const float k = (float)ki;
    float r = x - k * 0.693359375f; /* ln 2 in two parts (Cody-Waite), the first exact times any such k */
    r = r + k * 2.12194440e-4f;
    float p = 1.9841270e-4f;
    p = p * r + 1.3888889e-3f;
    p = p * r + 8.3333333e-3f;
    p = p * r + 4.1666667e-2f;
    p = p * r + 1.6666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (ki + 127) << 23; /* 2^k, built in the exponent field */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Offsets of B and C for channel d0 + i of a block (an integer division per channel and step is measurably slow,
 * so they are tabulated once per work item). */
static void bc_offsets(const ScanArgs *a, int64_t d0, int64_t nd, int64_t *boff, int64_t *coff) {
    for (int64_t i = 0; i < nd; i++) {
        boff[i] = ((d0 + i) / a->B_dpg) * a->B_sg;
        coff[i] = ((d0 + i) / a->C_dpg) * a->C_sg;
    }
}

static int64_t take(ScanArgs *a) { return __atomic_fetch_add(&a->next, 1, __ATOMIC_RELAXED); }

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_clamped(-x)); }

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)), with log1p(y) = 2 atanh(y / (2 + y)) as an odd series in
 * s = y / (2 + y) <= 1/3 (no cancellation for small y; truncation below 1e-9 relative). Equals torch's softplus
 * (threshold 20) to float32 rounding. */
static inline float softplus(float x) {
    const float y = exp_clamped(x > 0.0f ? -x : x), s = y / (2.0f + y), s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return (x > 0.0f ? x : 0.0f) + 2.0f * s * p;
}

/* Sum of p[0..n): a halving tree when n is a power of two. With n a compile-time constant this is a few vector
 * shuffles and adds; `#pragma omp simd reduction` instead adds the lanes one after another, a serial chain that
 * measured as the slowest part of the loop. */
static inline __attribute__((always_inline)) float hsum(const float *p, const int64_t n) {
    if (n == 8 || n == 16 || n == 32 || n == 64) { /* fixed-size halvings, each a loop gcc turns into one vector op */
        float q[32];
        int64_t w = n / 2;
        for (int64_t k = 0; k < w; k++) q[k] = p[k] + p[k + w];
        for (w /= 2; w > 0; w /= 2)
            for (int64_t k = 0; k < w; k++) q[k] += q[k + w];
        return q[0];
    }
    float acc = 0.0f;
    for (int64_t k = 0; k < n; k++) acc += p[k];
    return acc;
}

/* The step sizes dt = softplus(delta + bias) of channels d0..d0+nd at (bi, t) into dts, dt u into dtus, and
 * d dt / d delta = sigmoid(delta + bias) into sg when it is given: one vectorised pass over the block's channels. */
static inline void step_sizes(const ScanArgs *a, int64_t bi, int64_t t, int64_t d0, int64_t nd, float *dts,
                              float *dtus, float *sg) {
    const float *dl = a->delta + AT(a, DELTA, bi, d0, t), *ul = a->u + AT(a, U, bi, d0, t);
    const int64_t sd = a->s[DELTA][1], su = a->s[U][1];
    for (int64_t i = 0; i < nd; i++) dts[i] = dl[i * sd] + (a->delta_bias ? a->delta_bias[d0 + i] : 0.0f);
    if (a->softplus) {
        if (sg) {
#pragma omp simd
            for (int64_t i = 0; i < nd; i++) sg[i] = sigmoid(dts[i]);
        }
#pragma omp simd
        for (int64_t i = 0; i < nd; i++) dts[i] = softplus(dts[i]);
    } else if (sg) {
        for (int64_t i = 0; i < nd; i++) sg[i] = 1.0f;
    }
    for (int64_t i = 0; i < nd; i++) dtus[i] = dts[i] * ul[i * su];
}

/* One time step t for channels d0..d0+nd of batch row bi: h <- a h + dt u B; ys[i] = <C, h>; the decays go to abuf
 * when it is given (backward keeps them). The loops over n vectorise fully only when n is a compile-time constant:
 * step() below instantiates this for common state sizes. */
static inline __attribute__((always_inline)) void step_n(const ScanArgs *a, const int64_t n, int64_t bi, int64_t t,
                                                         int64_t d0, int64_t nd, const int64_t *boff,
                                                         const int64_t *coff, float *h, float *abuf, float *ys,
                                                         float *dts, float *dtus, float *sg) {
    const int64_t l = a->l;
    step_sizes(a, bi, t, d0, nd, dts, dtus, sg);
    const float keep = (a->reset && a->reset[bi * l + t]) ? 0.0f : 1.0f;
    const float *Bt = a->B + bi * a->B_sb + t * a->B_st, *Ct = a->C + bi * a->C_sb + t * a->C_st;
    for (int64_t i = 0; i < nd; i++) {
        const int64_t c = d0 + i;
        const float dtv = dts[i], dtu = dtus[i];
        const float *Ar = a->A + c * n, *Bp = Bt + boff[i], *Cp = Ct + coff[i];
        float *hd = h + i * n;
        float prod[n];
        if (abuf) {
            float *ad = abuf + i * n;
#pragma omp simd
            for (int64_t k = 0; k < n; k++) {
                const float dec = keep * exp_clamped(dtv * Ar[k]);
                ad[k] = dec;
                const float hk = dec * hd[k] + dtu * Bp[k];
                hd[k] = hk;
                prod[k] = hk * Cp[k];
            }
        } else {
#pragma omp simd
            for (int64_t k = 0; k < n; k++) {
                const float hk = keep * exp_clamped(dtv * Ar[k]) * hd[k] + dtu * Bp[k];
                hd[k] = hk;
                prod[k] = hk * Cp[k];
            }
        }
        const float acc = hsum(prod, n);
        ys[i] = acc;
    }
    (void)l;
}

static __attribute__((noinline)) void step(const ScanArgs *a, int64_t bi, int64_t t, int64_t d0, int64_t nd,
                                           const int64_t *boff, const int64_t *coff, float *h, float *abuf, float *ys,
                                           float *dts, float *dtus, float *sg) {
    switch (a->n) {
    case 16: step_n(a, 16, bi, t, d0, nd, boff, coff, h, abuf, ys, dts, dtus, sg); break;
    case 8: step_n(a, 8, bi, t, d0, nd, boff, coff, h, abuf, ys, dts, dtus, sg); break;
    case 32: step_n(a, 32, bi, t, d0, nd, boff, coff, h, abuf, ys, dts, dtus, sg); break;
    case 64: step_n(a, 64, bi, t, d0, nd, boff, coff, h, abuf, ys, dts, dtus, sg); break;
    default: step_n(a, a->n, bi, t, d0, nd, boff, coff, h, abuf, ys, dts, dtus, sg);
    }
}

/* out = (y + D u) silu(z) for the block's channels at (bi, t), y = ys (one vectorised pass). */
static inline void gate(const ScanArgs *a, int64_t bi, int64_t t, int64_t d0, int64_t nd, const float *ys) {
    const float *ul = a->u + AT(a, U, bi, d0, t), *zl = a->z ? a->z + AT(a, Z, bi, d0, t) : NULL;
    float *ol = a->out + AT(a, OUT, bi, d0, t);
    const int64_t su = a->s[U][1], sz = a->s[Z][1], so = a->s[OUT][1];
#pragma omp simd
    for (int64_t i = 0; i < nd; i++) {
        float o = ys[i] + (a->D ? a->D[d0 + i] * ul[i * su] : 0.0f);
        if (zl) o *= zl[i * sz] * sigmoid(zl[i * sz]);
        ol[i * so] = o;
    }
}

/* Backward of the gate for the block at (bi, t): dy (into the scan) from dout, dz, the skip's du into du_skip, its
 * dD into dD_loc (one vectorised pass). */
static inline void gate_backward(const ScanArgs *a, int64_t bi, int64_t t, int64_t d0, int64_t nd, const float *ys,
                                 float *dy, float *du_skip, double *dD_loc) {
    const float *ul = a->u + AT(a, U, bi, d0, t), *zl = a->z ? a->z + AT(a, Z, bi, d0, t) : NULL;
    const float *dl = a->dout ? a->dout + AT(a, DOUT, bi, d0, t) : NULL;
    float *dzl = a->z ? a->dz + AT(a, DZ, bi, d0, t) : NULL;
    const int64_t su = a->s[U][1], sz = a->s[Z][1], sdo = a->s[DOUT][1], sdz = a->s[DZ][1];
#pragma omp simd
    for (int64_t i = 0; i < nd; i++) {
        const float uv = ul[i * su], Dv = a->D ? a->D[d0 + i] : 0.0f;
        float dyv = dl ? dl[i * sdo] : 0.0f;
        if (zl) {
            const float zv = zl[i * sz], sg = sigmoid(zv);
            dzl[i * sdz] = dyv * (ys[i] + Dv * uv) * sg * (1.0f + zv * (1.0f - sg)); /* silu' = s (1 + z (1 - s)) */
            dyv *= zv * sg;
        }
        dy[i] = dyv;
        du_skip[i] = dyv * Dv;
    }
    if (a->D)
        for (int64_t i = 0; i < nd; i++) dD_loc[i] += (double)(dy[i] * ul[i * su]);
}

static void *forward_worker(void *p) {
    ScanArgs *a = (ScanArgs *)p;
    const int64_t n = a->n, d = a->d, l = a->l, T = a->T, DB = a->DB;
    const int64_t nblk = (d + DB - 1) / DB, nck = (l + T - 1) / T;
    float *h = (float *)malloc(sizeof(float) * DB * (n + 3));
    int64_t *off = (int64_t *)malloc(sizeof(int64_t) * 2 * DB);
    if (!h || !off) {
        free(h);
        free(off);
        __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    float *ys = h + DB * n, *dts = ys + DB, *dtus = dts + DB;
    for (int64_t item = take(a); item < a->b * nblk; item = take(a)) {
        const int64_t bi = item / nblk, d0 = (item % nblk) * DB, nd = (d0 + DB <= d ? DB : d - d0);
        memcpy(h, a->h0 + (bi * d + d0) * n, sizeof(float) * nd * n);
        bc_offsets(a, d0, nd, off, off + DB);
        for (int64_t t = 0; t < l; t++) {
            if (t % T == 0) memcpy(a->ckpt + ((bi * nck + t / T) * d + d0) * n, h, sizeof(float) * nd * n);
            step(a, bi, t, d0, nd, off, off + DB, h, NULL, ys, dts, dtus, NULL);
            gate(a, bi, t, d0, nd, ys);
        }
        memcpy(a->h_last + (bi * d + d0) * n, h, sizeof(float) * nd * n);
    }
    free(h);
    free(off);
    return NULL;
}

/* The adjoint step for one channel (see the header): consumes G = a_{t+1} g_{t+1}, leaves a_t g_t in it; the
 * gradients of B and C go to dBp/dCp (float, this thread's buffer) or, for time-invariant ones, to dBd/dCd (double,
 * this work item's accumulator). Returns <g_t, B_t> in *gB and <g_t a_t h_{t-1}, A> in *dda. */
static inline __attribute__((always_inline)) void adjoint_n(const int64_t n, float dyv, float dtv, float dtu,
                                                            const float *ap, const float *hp, const float *hprev,
                                                            const float *Ar, const float *Bp, const float *Cp,
                                                            float *G, double *dAd, float *dBp, float *dCp,
                                                            double *dBd, double *dCd, float *gB_out,
                                                            float *dda_out) {
    float pB[n], pA[n];
    if (dBp && dCp) {
#pragma omp simd
        for (int64_t k = 0; k < n; k++) {
            const float gt = G[k] + dyv * Cp[k], W = gt * ap[k] * hprev[k];
            dCp[k] += hp[k] * dyv;
            dBp[k] += gt * dtu;
            pB[k] = gt * Bp[k];
            pA[k] = W * Ar[k];
            dAd[k] += (double)(W * dtv);
            G[k] = ap[k] * gt;
        }
    } else { /* (d, n) B or C: summed over batch and time in double, per channel */
        for (int64_t k = 0; k < n; k++) {
            const float gt = G[k] + dyv * Cp[k], W = gt * ap[k] * hprev[k];
            if (dCp) dCp[k] += hp[k] * dyv; else dCd[k] += (double)(hp[k] * dyv);
            if (dBp) dBp[k] += gt * dtu; else dBd[k] += (double)(gt * dtu);
            pB[k] = gt * Bp[k];
            pA[k] = W * Ar[k];
            dAd[k] += (double)(W * dtv);
            G[k] = ap[k] * gt;
        }
    }
    const float gB = hsum(pB, n), dda = hsum(pA, n);
    *gB_out = gB;
    *dda_out = dda;
}

static void *backward_worker_tid(ScanArgs *a, int64_t tid) {
    const int64_t n = a->n, d = a->d, l = a->l, T = a->T, DB = a->DB;
    const int64_t nblk = (d + DB - 1) / DB, nck = (l + T - 1) / T, S = DB * n;
    /* abuf, hbuf: a chunk's decays and states; ybuf its scan outputs; hs: its start state; G: a_{t+1} g_{t+1};
     * per-item accumulators (dA, time-invariant dB and dC, dD, dbias) in double */
    float *fbuf = (float *)malloc(sizeof(float) * (2 * T * S + 4 * T * DB + 2 * S + 2 * DB));
    double *dbuf = (double *)malloc(sizeof(double) * (3 * S + 2 * DB));
    int64_t *off = (int64_t *)malloc(sizeof(int64_t) * 2 * DB);
    if (!fbuf || !dbuf || !off) {
        free(fbuf);
        free(dbuf);
        free(off);
        __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    float *abuf = fbuf, *hbuf = fbuf + T * S, *ybuf = hbuf + T * S, *dtbuf = ybuf + T * DB, *dtubuf = dtbuf + T * DB;
    float *sgbuf = dtubuf + T * DB, *hs = sgbuf + T * DB, *G = hs + S, *dyb = G + S, *dusb = dyb + DB;
    double *dA_loc = dbuf, *dB_ti = dbuf + S, *dC_ti = dbuf + 2 * S, *dD_loc = dbuf + 3 * S, *db_loc = dD_loc + DB;
    double *dA_t = a->dA + tid * d * n, *dD_t = a->dD + tid * d, *db_t = a->dbias + tid * d;
    float *dB_t = a->dB + tid * a->dB_size, *dC_t = a->dC + tid * a->dC_size;
    for (int64_t item = take(a); item < a->b * nblk; item = take(a)) {
        const int64_t bi = item / nblk, d0 = (item % nblk) * DB, nd = (d0 + DB <= d ? DB : d - d0);
        memset(dbuf, 0, sizeof(double) * (3 * S + 2 * DB));
        bc_offsets(a, d0, nd, off, off + DB);
        memcpy(G, a->dh_last + (bi * d + d0) * n, sizeof(float) * nd * n);
        for (int64_t c = nck - 1; c >= 0; c--) {
            const int64_t t0 = c * T, t1 = (t0 + T < l ? t0 + T : l);
            memcpy(hs, a->ckpt + ((bi * nck + c) * d + d0) * n, sizeof(float) * nd * n);
            memcpy(hbuf, hs, sizeof(float) * nd * n);
            for (int64_t t = t0; t < t1; t++) { /* recompute decays, states and outputs of the chunk */
                float *ht = hbuf + (t - t0) * S;
                if (t > t0) memcpy(ht, ht - S, sizeof(float) * nd * n);
                const int64_t j = (t - t0) * DB;
                step(a, bi, t, d0, nd, off, off + DB, ht, abuf + (t - t0) * S, ybuf + j, dtbuf + j, dtubuf + j,
                     sgbuf + j);
            }
            for (int64_t t = t1 - 1; t >= t0; t--) { /* the adjoint recurrence, backwards */
                const float *Bt = a->B + bi * a->B_sb + t * a->B_st, *Ct = a->C + bi * a->C_sb + t * a->C_st;
                gate_backward(a, bi, t, d0, nd, ybuf + (t - t0) * DB, dyb, dusb, dD_loc);
                for (int64_t i = 0; i < nd; i++) {
                    const int64_t ch = d0 + i;
                    const int64_t j = (t - t0) * DB + i;
                    const float dtv = dtbuf[j], dtu = dtubuf[j], dsig = sgbuf[j], uv = a->u[AT(a, U, bi, ch, t)];
                    const float dyv = dyb[i], du_skip = dusb[i];
                    const float *ap = abuf + (t - t0) * S + i * n, *hp = hbuf + (t - t0) * S + i * n;
                    const float *hprev = (t > t0 ? hbuf + (t - t0 - 1) * S : hs) + i * n;
                    const float *Bp = Bt + off[i], *Cp = Ct + off[DB + i];
                    float *dBp = a->B_ti ? NULL : dB_t + (Bp - a->B), *dCp = a->C_ti ? NULL : dC_t + (Cp - a->C);
                    float gB, dda;
#define ADJ(NN)                                                                                                 \
    adjoint_n(NN, dyv, dtv, dtu, ap, hp, hprev, a->A + ch * n, Bp, Cp, G + i * n, dA_loc + i * n, dBp, dCp,     \
              dB_ti + i * n, dC_ti + i * n, &gB, &dda)
                    switch (n) {
                    case 16: ADJ(16); break;
                    case 8: ADJ(8); break;
                    case 32: ADJ(32); break;
                    case 64: ADJ(64); break;
                    default: ADJ(n);
                    }
#undef ADJ
                    a->du[AT(a, DU, bi, ch, t)] = gB * dtv + du_skip;
                    const float ddt = (gB * uv + dda) * dsig; /* d softplus(x) / dx = sigmoid(x) */
                    a->ddelta[AT(a, DDELTA, bi, ch, t)] = ddt;
                    db_loc[i] += (double)ddt;
                }
            }
        }
        memcpy(a->dh0 + (bi * d + d0) * n, G, sizeof(float) * nd * n);
        for (int64_t j = 0; j < nd * n; j++) dA_t[d0 * n + j] += dA_loc[j];
        for (int64_t i = 0; i < nd; i++) {
            dD_t[d0 + i] += dD_loc[i];
            db_t[d0 + i] += db_loc[i];
        }
        if (a->B_ti)
            for (int64_t j = 0; j < nd * n; j++) dB_t[d0 * n + j] += (float)dB_ti[j];
        if (a->C_ti)
            for (int64_t j = 0; j < nd * n; j++) dC_t[d0 * n + j] += (float)dC_ti[j];
    }
    free(fbuf);
    free(dbuf);
    free(off);
    return NULL;
}

typedef struct {
    ScanArgs *a;
    int64_t tid;
} Job;

static void *backward_job(void *p) { return backward_worker_tid(((Job *)p)->a, ((Job *)p)->tid); }

static void *forward_job(void *p) { return forward_worker(((Job *)p)->a); }

/* Runs `fn` on nthreads threads (the caller is thread 0). Returns 0, or -1 if a thread failed. */
static int run_threads(ScanArgs *a, void *(*fn)(void *)) {
    int64_t nt = a->nthreads < 1 ? 1 : a->nthreads;
    Job jobs[64];
    pthread_t th[64];
    int started[64] = {0};
    if (nt > 64) nt = 64;
    a->next = 0;
    a->failed = 0;
    for (int64_t i = 0; i < nt; i++) jobs[i] = (Job){a, i};
    for (int64_t i = 1; i < nt; i++) started[i] = pthread_create(&th[i], NULL, fn, &jobs[i]) == 0;
    fn(&jobs[0]); /* threads that failed to start leave their items to the others */
    for (int64_t i = 1; i < nt; i++)
        if (started[i]) pthread_join(th[i], NULL);
    return a->failed ? -1 : 0;
}

int seqssm_scan_forward(ScanArgs *a) { return run_threads(a, forward_job); }

int seqssm_scan_backward(ScanArgs *a) { return run_threads(a, backward_job); }

int64_t seqssm_scan_abi(void) { return (int64_t)sizeof(ScanArgs); }
