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
 * 2a-2b, zero-order hold of eq. 4) cost one exp and a few multiply-adds per state element, vectorised over n.
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
    const float *dt, *u, *A; /* dt, u: (b, l, d); A: (d, n) */
    /* B and C: element (bi, t, channel c, k) at X[bi*sb + t*st + (c / dpg)*sg + k]; ti: time-invariant (d, n) */
    const float *B;
    int64_t B_sb, B_st, B_sg, B_dpg, B_ti;
    const float *C;
    int64_t C_sb, C_st, C_sg, C_dpg, C_ti;
    const uint8_t *reset; /* (b, l), 1 where a packed sequence starts (the decay there is 0); or NULL */
    const float *h0;      /* (b, d, n) */
    float *ckpt;          /* (b, ceil(l / T), d, n): the state before each chunk */
    float *y;             /* forward: (b, l, d) */
    float *h_last;        /* forward: (b, d, n) */
    const float *dy;      /* backward: (b, l, d), or NULL (no gradient reaches the output) */
    const float *dh_last; /* backward: (b, d, n) */
    float *ddt, *du;      /* backward: (b, l, d), the scan's part only */
    double *dA;           /* backward: (nthreads, d, n), zeroed by the caller */
    float *dB, *dC;       /* backward: (nthreads, size of B / C), zeroed by the caller */
    int64_t dB_size, dC_size;
    float *dh0;     /* backward: (b, d, n) */
    int64_t next;   /* the shared work counter */
    int64_t failed; /* set when a thread could not allocate its buffers */
} ScanArgs;

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

/* Offsets of B and C for (bi, t) and for channel d0 + i of a block (an integer division per channel and step is
 * measurably slow, so the channel part is tabulated once per work item). */
static void bc_offsets(const ScanArgs *a, int64_t d0, int64_t nd, int64_t *boff, int64_t *coff) {
    for (int64_t i = 0; i < nd; i++) {
        boff[i] = ((d0 + i) / a->B_dpg) * a->B_sg;
        coff[i] = ((d0 + i) / a->C_dpg) * a->C_sg;
    }
}

static int64_t take(ScanArgs *a) { return __atomic_fetch_add(&a->next, 1, __ATOMIC_RELAXED); }

/* One step for channels d0..d0+nd of row bi: h <- a h + dt u B, y = <C, h> into y_row, decays into abuf (each when
 * given). */
static inline __attribute__((always_inline)) void step_n(const ScanArgs *a, const int64_t n, int64_t bi, int64_t t,
                                                         int64_t d0, int64_t nd, const int64_t *boff, const int64_t *coff,
                                                         float *h, float *abuf, float *y_row) {
    const int64_t d = a->d;
    const float *Bt = a->B + bi * a->B_sb + t * a->B_st, *Ct = a->C + bi * a->C_sb + t * a->C_st;
    const float keep = (a->reset && a->reset[bi * a->l + t]) ? 0.0f : 1.0f;
    const float *dtr = a->dt + (bi * a->l + t) * d, *ur = a->u + (bi * a->l + t) * d;
    for (int64_t i = 0; i < nd; i++) {
        const int64_t c = d0 + i;
        const float dtv = dtr[c], dtu = dtv * ur[c];
        const float *Ar = a->A + c * n;
        const float *Bp = Bt + boff[i], *Cp = Ct + coff[i];
        float *hd = h + i * n;
        float acc = 0.0f;
        if (abuf) {
            float *ad = abuf + i * n;
#pragma omp simd reduction(+ : acc)
            for (int64_t k = 0; k < n; k++) {
                const float dec = keep * exp_clamped(dtv * Ar[k]);
                ad[k] = dec;
                const float hk = dec * hd[k] + dtu * Bp[k];
                hd[k] = hk;
                acc += hk * Cp[k];
            }
        } else {
#pragma omp simd reduction(+ : acc)
            for (int64_t k = 0; k < n; k++) {
                const float hk = keep * exp_clamped(dtv * Ar[k]) * hd[k] + dtu * Bp[k];
                hd[k] = hk;
                acc += hk * Cp[k];
            }
        }
        if (y_row) y_row[c] = acc;
    }
}

/* The loops over n vectorise fully only when n is a compile-time constant: common state sizes get their own copy. */
static void step(const ScanArgs *a, int64_t bi, int64_t t, int64_t d0, int64_t nd, const int64_t *boff,
                 const int64_t *coff, float *h, float *abuf, float *y_row) {
    switch (a->n) {
    case 16: step_n(a, 16, bi, t, d0, nd, boff, coff, h, abuf, y_row); break;
    case 8: step_n(a, 8, bi, t, d0, nd, boff, coff, h, abuf, y_row); break;
    case 32: step_n(a, 32, bi, t, d0, nd, boff, coff, h, abuf, y_row); break;
    case 64: step_n(a, 64, bi, t, d0, nd, boff, coff, h, abuf, y_row); break;
    default: step_n(a, a->n, bi, t, d0, nd, boff, coff, h, abuf, y_row);
    }
}

static void *forward_worker(void *p) {
    ScanArgs *a = (ScanArgs *)p;
    const int64_t n = a->n, d = a->d, l = a->l, T = a->T, DB = a->DB;
    const int64_t nblk = (d + DB - 1) / DB, nck = (l + T - 1) / T;
    float *h = (float *)malloc(sizeof(float) * DB * n);
    int64_t *off = (int64_t *)malloc(sizeof(int64_t) * 2 * DB);
    if (!h || !off) {
        free(h);
        free(off);
        __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    for (int64_t item = take(a); item < a->b * nblk; item = take(a)) {
        const int64_t bi = item / nblk, d0 = (item % nblk) * DB, nd = (d0 + DB <= d ? DB : d - d0);
        memcpy(h, a->h0 + (bi * d + d0) * n, sizeof(float) * nd * n);
        bc_offsets(a, d0, nd, off, off + DB);
        for (int64_t t = 0; t < l; t++) {
            if (t % T == 0) memcpy(a->ckpt + ((bi * nck + t / T) * d + d0) * n, h, sizeof(float) * nd * n);
            step(a, bi, t, d0, nd, off, off + DB, h, NULL, a->y + (bi * l + t) * d);
        }
        memcpy(a->h_last + (bi * d + d0) * n, h, sizeof(float) * nd * n);
    }
    free(h);
    free(off);
    return NULL;
}

static void *backward_worker_tid(ScanArgs *a, int64_t tid) {
    const int64_t n = a->n, d = a->d, l = a->l, T = a->T, DB = a->DB;
    const int64_t nblk = (d + DB - 1) / DB, nck = (l + T - 1) / T, S = DB * n;
    /* abuf, hbuf: a chunk's decays and states; hs: its start state; G: a_{t+1} g_{t+1}; accumulators in double */
    float *fbuf = (float *)malloc(sizeof(float) * (2 * T * S + 2 * S));
    double *dbuf = (double *)malloc(sizeof(double) * 3 * S);
    int64_t *off = (int64_t *)malloc(sizeof(int64_t) * 2 * DB);
    if (!fbuf || !dbuf || !off) {
        free(fbuf);
        free(dbuf);
        free(off);
        __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    float *abuf = fbuf, *hbuf = fbuf + T * S, *hs = fbuf + 2 * T * S, *G = hs + S;
    double *dA_loc = dbuf, *dB_ti = dbuf + S, *dC_ti = dbuf + 2 * S;
    double *dA_t = a->dA + tid * d * n;
    float *dB_t = a->dB + tid * a->dB_size, *dC_t = a->dC + tid * a->dC_size;
    for (int64_t item = take(a); item < a->b * nblk; item = take(a)) {
        const int64_t bi = item / nblk, d0 = (item % nblk) * DB, nd = (d0 + DB <= d ? DB : d - d0);
        memset(dbuf, 0, sizeof(double) * 3 * S);
        bc_offsets(a, d0, nd, off, off + DB);
        memcpy(G, a->dh_last + (bi * d + d0) * n, sizeof(float) * nd * n);
        for (int64_t c = nck - 1; c >= 0; c--) {
            const int64_t t0 = c * T, t1 = (t0 + T < l ? t0 + T : l);
            memcpy(hs, a->ckpt + ((bi * nck + c) * d + d0) * n, sizeof(float) * nd * n);
            memcpy(hbuf, hs, sizeof(float) * nd * n);
            for (int64_t t = t0; t < t1; t++) { /* recompute decays and states of the chunk */
                float *ht = hbuf + (t - t0) * S;
                if (t > t0) memcpy(ht, ht - S, sizeof(float) * nd * n);
                step(a, bi, t, d0, nd, off, off + DB, ht, abuf + (t - t0) * S, NULL);
            }
            for (int64_t t = t1 - 1; t >= t0; t--) { /* the adjoint recurrence, backwards */
                const float *dtr = a->dt + (bi * l + t) * d, *ur = a->u + (bi * l + t) * d;
                const float *dyr = a->dy ? a->dy + (bi * l + t) * d : NULL;
                const float *Bt = a->B + bi * a->B_sb + t * a->B_st, *Ct = a->C + bi * a->C_sb + t * a->C_st;
                float *ddtr = a->ddt + (bi * l + t) * d, *dur = a->du + (bi * l + t) * d;
                for (int64_t i = 0; i < nd; i++) {
                    const int64_t ch = d0 + i;
                    const float dtv = dtr[ch], uv = ur[ch], dtu = dtv * uv, dyv = dyr ? dyr[ch] : 0.0f;
                    const float *ap = abuf + (t - t0) * S + i * n, *hp = hbuf + (t - t0) * S + i * n;
                    const float *hprev = (t > t0 ? hbuf + (t - t0 - 1) * S : hs) + i * n;
                    const float *Ar = a->A + ch * n;
                    const float *Bp = Bt + off[i], *Cp = Ct + off[DB + i];
                    float *Gd = G + i * n;
                    double *dAd = dA_loc + i * n;
                    float gB = 0.0f, dda = 0.0f;
                    if (a->B_ti || a->C_ti) { /* (d, n) B or C: sum over batch and time in double, per channel */
                        double *dBd = dB_ti + i * n, *dCd = dC_ti + i * n;
                        float *dBp = a->B_ti ? NULL : dB_t + (Bp - a->B), *dCp = a->C_ti ? NULL : dC_t + (Cp - a->C);
                        for (int64_t k = 0; k < n; k++) {
                            const float gt = Gd[k] + dyv * Cp[k], W = gt * ap[k] * hprev[k];
                            if (dCp) dCp[k] += hp[k] * dyv; else dCd[k] += (double)(hp[k] * dyv);
                            if (dBp) dBp[k] += gt * dtu; else dBd[k] += (double)(gt * dtu);
                            gB += gt * Bp[k];
                            dda += W * Ar[k];
                            dAd[k] += (double)(W * dtv);
                            Gd[k] = ap[k] * gt;
                        }
                    } else {
                        float *dBp = dB_t + (Bp - a->B), *dCp = dC_t + (Cp - a->C);
#pragma omp simd reduction(+ : gB, dda)
                        for (int64_t k = 0; k < n; k++) {
                            const float gt = Gd[k] + dyv * Cp[k], W = gt * ap[k] * hprev[k];
                            dCp[k] += hp[k] * dyv;
                            dBp[k] += gt * dtu;
                            gB += gt * Bp[k];
                            dda += W * Ar[k];
                            dAd[k] += (double)(W * dtv);
                            Gd[k] = ap[k] * gt;
                        }
                    }
                    dur[ch] = gB * dtv;
                    ddtr[ch] = gB * uv + dda;
                }
            }
        }
        memcpy(a->dh0 + (bi * d + d0) * n, G, sizeof(float) * nd * n);
        for (int64_t j = 0; j < nd * n; j++) dA_t[d0 * n + j] += dA_loc[j];
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

static void *backward_worker(void *p) {
    Job *j = (Job *)p;
    return backward_worker_tid(j->a, j->tid);
}

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

int seqssm_scan_backward(ScanArgs *a) { return run_threads(a, backward_worker); }

int64_t seqssm_scan_abi(void) { return (int64_t)sizeof(ScanArgs); }
