/* Exact Hamming radius search over fixed-length binary hashes (hashbank.index).
 *
 * Layout ("chained pair index"): a hash of 16*m bits is cut into m 16-bit pieces.
 * Table t holds every item once, grouped by its piece t (a counting sort; off_t
 * gives each of the 65,536 groups' first slot). A slot stores only
 *   f_t: the item's next piece, t+1 (mod m), and
 *   q_t: the low byte of the item's position inside its group of table t+1
 *        (the high part, for the rare groups over 256 items, is in a sorted side
 *        list bslot_t/bhi_t).
 * f_t is both the filter the search scans and the group of the same item in
 * table t+1, so off_{t+1}[f_t] + q_t is its slot there: following these links
 * reads the whole hash back, piece by piece. The last table links to the id
 * node instead (last: ids sorted ascending), whose id_next points back into
 * table 0. So no copy of the hashes is kept: ~3 bytes per piece, ~59 bytes per
 * 256-bit hash with ids.
 *
 * Search is exact by a pairing argument. With a = r / m and c = 2a + 1, if
 * d(x, q) <= r then some i has d_i <= a and d_i + d_{i+1} <= c (pieces taken
 * circularly). Otherwise every piece with d_i <= a is followed by one with
 * d_{i+1} > a and the two add up to >= 2a + 2, while every other piece is
 * >= a + 1: the total would be >= m(a + 1) > r. So table t is scanned over the
 * groups whose piece lies within a of the query's (17 groups at r = 31), keeping
 * slots whose f_t is within c - d_t of the query's next piece; each candidate is
 * then verified by walking its links, all candidates one hop per round (the
 * loads of a round were prefetched by the round before, as the search is bound
 * by memory latency), and a hit is reported only by the first table whose
 * condition it meets.
 *
 * Plain C with the buffer protocol; no numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT
#endif

#define MAXM 32          /* pieces: hashes up to 512 bits */
#define GROUPS 65536     /* groups per table: one per 16-bit piece value */
#define PAD 16           /* f arrays are read in vectors of 16 */
#define QBIG 256         /* groups larger than this keep high position bits aside */

static inline int pop32(uint32_t x) { return __builtin_popcount(x); }

static inline uint32_t piece_of(const uint8_t *h, int j) { return ((uint32_t)h[2 * j] << 8) | h[2 * j + 1]; }

/* ---- buffers ---------------------------------------------------------------- */

static int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t need, int writable, const char *what) {
    if (!obj) return -1;
    if (PyObject_GetBuffer(obj, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) return -1;
    if (view->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: buffer has %zd bytes, need %zd", what, view->len, need);
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

static void release(Py_buffer *view) {
    if (view->obj) PyBuffer_Release(view);
    view->obj = NULL;
}

/* The first count buffers of a list, each at least need bytes. */
static int get_bufs(PyObject *list, Py_buffer *views, int count, Py_ssize_t need, int writable, const char *what) {
    if (!PyList_Check(list) || PyList_GET_SIZE(list) < count) {
        PyErr_Format(PyExc_ValueError, "%s: need a list of %d buffers", what, count);
        return -1;
    }
    for (int t = 0; t < count; t++)
        if (get_buf(PyList_GET_ITEM(list, t), &views[t], need, writable, what) < 0) return -1;
    return 0;
}

static int check_m(int m) {
    if (m < 2 || m > MAXM) {
        PyErr_Format(PyExc_ValueError, "hashes must have 2 to %d 16-bit pieces, got %d", MAXM, m);
        return -1;
    }
    return 0;
}

/* ---- the searchable base -------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int m, ids64;
    uint32_t n;
    Py_buffer off[MAXM], f[MAXM], q[MAXM], bslot[MAXM], bhi[MAXM];
    Py_buffer last, id_next, ids, dead;
    int ready;
} BaseObject;

typedef struct {
    const uint32_t *off[MAXM];
    const uint16_t *f[MAXM];
    const uint8_t *q[MAXM];
    const uint32_t *bslot[MAXM], *bhi[MAXM];
    uint32_t nbig[MAXM];
    const uint32_t *last, *id_next;
    const void *ids;
    const uint8_t *dead;
    int m, ids64;
    uint32_t n;
} View;

static void view_of(BaseObject *b, View *v) {
    for (int t = 0; t < b->m; t++) {
        v->off[t] = b->off[t].buf;
        v->f[t] = b->f[t].buf;
        if (t + 1 < b->m) {
            v->q[t] = b->q[t].buf;
            v->bslot[t] = b->bslot[t].buf;
            v->bhi[t] = b->bhi[t].buf;
            v->nbig[t] = (uint32_t)(b->bslot[t].len / 4);
        }
    }
    v->last = b->last.buf;
    v->id_next = b->id_next.buf;
    v->ids = b->ids.buf;
    v->dead = b->dead.buf;
    v->m = b->m;
    v->ids64 = b->ids64;
    v->n = b->n;
}

static void Base_release(BaseObject *self) {
    for (int t = 0; t < MAXM; t++) {
        release(&self->off[t]);
        release(&self->f[t]);
        release(&self->q[t]);
        release(&self->bslot[t]);
        release(&self->bhi[t]);
    }
    release(&self->last);
    release(&self->id_next);
    release(&self->ids);
    release(&self->dead);
}

static void Base_dealloc(BaseObject *self) {
    Base_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Base(m, n, offs, fs, qs, bslots, bhis, last, id_next, ids, ids_itemsize, dead) */
static int Base_init(BaseObject *self, PyObject *args, PyObject *kw) {
    int m, ids_itemsize;
    unsigned int n;
    PyObject *offs, *fs, *qs, *bslots, *bhis, *last, *id_next, *ids, *dead;
    if (!PyArg_ParseTuple(args, "iIOOOOOOOOiO", &m, &n, &offs, &fs, &qs, &bslots, &bhis, &last, &id_next, &ids,
                          &ids_itemsize, &dead))
        return -1;
    if (check_m(m) < 0) return -1;
    if (ids_itemsize != 4 && ids_itemsize != 8) {
        PyErr_SetString(PyExc_ValueError, "ids must be 4 or 8 bytes");
        return -1;
    }
    if (self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Base already initialised");
        return -1;
    }
    self->m = m;
    self->n = n;
    self->ids64 = ids_itemsize == 8;
    int ok = get_bufs(offs, self->off, m, (GROUPS + 1) * 4, 0, "off") == 0 &&
             get_bufs(fs, self->f, m, ((Py_ssize_t)n + PAD) * 2, 0, "f") == 0 &&
             get_bufs(qs, self->q, m - 1, (Py_ssize_t)n, 0, "q") == 0 &&
             get_bufs(bslots, self->bslot, m - 1, 0, 0, "bslot") == 0 &&
             get_bufs(bhis, self->bhi, m - 1, 0, 0, "bhi") == 0 &&
             get_buf(last, &self->last, (Py_ssize_t)n * 4, 0, "last") == 0 &&
             get_buf(id_next, &self->id_next, (Py_ssize_t)n * 4, 0, "id_next") == 0 &&
             get_buf(ids, &self->ids, (Py_ssize_t)n * ids_itemsize, 0, "ids") == 0 &&
             get_buf(dead, &self->dead, ((Py_ssize_t)n + 7) / 8, 0, "dead") == 0;
    for (int t = 0; ok && t + 1 < m; t++)
        if (self->bhi[t].len != self->bslot[t].len) {
            PyErr_SetString(PyExc_ValueError, "bslot and bhi differ in length");
            ok = 0;
        }
    if (!ok) {
        Base_release(self);
        return -1;
    }
    self->ready = 1;
    return 0;
}

/* Slot in table u+1 of the item at slot s of table u (u < m-1). */
static inline uint32_t next_slot(const View *v, int u, uint32_t s) {
    uint32_t g = v->f[u][s];
    const uint32_t *off = v->off[u + 1];
    uint32_t lo = off[g], pos = v->q[u][s];
    if (off[g + 1] - lo > QBIG) {
        /* A big group: the high bits of the position are in the sorted side list. */
        const uint32_t *bs = v->bslot[u];
        uint32_t a = 0, b = v->nbig[u];
        while (a < b) {
            uint32_t mid = (a + b) >> 1;
            if (bs[mid] < s)
                a = mid + 1;
            else
                b = mid;
        }
        if (a < v->nbig[u] && bs[a] == s) pos |= v->bhi[u][a] << 8;
    }
    return lo + pos;
}

typedef struct {
    uint32_t qv[MAXM];
    int m, r, a, c;
} Query;

typedef struct {
    uint32_t *k;
    uint16_t *d;
    Py_ssize_t len, cap;
} Hits;

static int hits_push(Hits *h, uint32_t k, int d) {
    if (h->len == h->cap) {
        Py_ssize_t cap = h->cap ? h->cap * 2 : 64;
        uint32_t *nk = PyMem_RawRealloc(h->k, cap * sizeof(uint32_t));
        if (!nk) return -1;
        h->k = nk;
        uint16_t *nd = PyMem_RawRealloc(h->d, cap * sizeof(uint16_t));
        if (!nd) return -1;
        h->d = nd;
        h->cap = cap;
    }
    h->k[h->len] = k;
    h->d[h->len] = (uint16_t)d;
    h->len++;
    return 0;
}

/* ---- verification: candidates walk their links together ------------------- */

/* A candidate found by table t, now at slot of table u (u == m: at id-node slot k). */
typedef struct {
    uint32_t slot, k;
    int16_t dist;
    uint8_t t, u, need, have_k;
    uint8_t d[MAXM]; /* distance per piece, filled in as the walk reveals them */
} Cand;

#define CANDS 1024

typedef struct {
    Cand c[CANDS];
    int n;
} CandList;

static inline void prefetch_at(const View *v, const Cand *c) {
    if (c->u < v->m) {
        __builtin_prefetch(v->f[c->u] + c->slot);
        if (c->u + 1 < v->m) __builtin_prefetch(v->q[c->u] + c->slot);
        else __builtin_prefetch(v->last + c->slot);
    } else {
        __builtin_prefetch(v->dead + (c->k >> 3));
        __builtin_prefetch(v->id_next + c->k);
    }
}

#define HOP_AHEAD 8

static inline void prefetch_off(const View *v, const Cand *c) {
    if (c->u + 1 < v->m) __builtin_prefetch(v->off[c->u + 1] + v->f[c->u][c->slot]);
}

/* Would a table before t report this (fully revealed) item? */
static inline int seen_earlier(const Query *q, const Cand *c) {
    for (int i = 0; i < c->t; i++) {
        int di = c->d[i], dn = c->d[(i + 1) % q->m];
        if (di <= q->a && di + dn <= q->c) return 1;
    }
    return 0;
}

/* One hop of c. Returns 1: a hit, 0: go on, -1: dropped. */
static inline int step(const View *v, const Query *q, Cand *c) {
    int m = v->m;
    if (c->u == m) { /* id node: back to table 0 */
        if (v->dead[c->k >> 3] & (1u << (c->k & 7))) return -1;
        c->have_k = 1;
        c->slot = v->id_next[c->k];
        c->u = 0;
    } else {
        int u = c->u, j = (u + 1) % m;
        uint32_t fv = v->f[u][c->slot];
        if (j != c->t && j != (c->t + 1) % m) {
            int dj = pop32(fv ^ q->qv[j]);
            c->d[j] = (uint8_t)dj;
            c->dist += dj;
            if (c->dist > q->r) return -1;
            c->need--;
        }
        if (u + 1 < m) {
            c->slot = next_slot(v, u, c->slot);
            c->u = u + 1;
        } else {
            c->k = v->last[c->slot];
            c->u = m;
        }
    }
    if (c->need || !c->have_k) return 0;
    return seen_earlier(q, c) ? -1 : 1;
}

/* Verify every candidate in list, one hop per round, appending hits to out. */
static inline __attribute__((always_inline)) int verify_all(const View *v, const Query *q, CandList *list,
                                                            Hits *out) {
    Cand *c = list->c;
    int live = list->n;
    for (int i = 0; i < live; i++) prefetch_at(v, &c[i]);
    while (live) {
        /* One hop each; a candidate HOP_AHEAD places on reads its next group (in cache since the
         * last round) and fetches that group's offset, which its own hop will need. */
        for (int i = 0; i < live && i < HOP_AHEAD; i++) prefetch_off(v, &c[i]);
        int keep = 0;
        for (int i = 0; i < live; i++) {
            if (i + HOP_AHEAD < live) prefetch_off(v, &c[i + HOP_AHEAD]);
            int st = step(v, q, &c[i]);
            if (st == 1) {
                if (hits_push(out, c[i].k, c[i].dist) < 0) return -1;
            } else if (st == 0) {
                prefetch_at(v, &c[i]);
                if (keep != i) c[keep] = c[i];
                keep++;
            }
        }
        live = keep;
    }
    list->n = 0;
    return 0;
}

/* ---- scanning groups ------------------------------------------------------ */

typedef uint16_t v16 __attribute__((vector_size(32)));
typedef uint64_t v4q __attribute__((vector_size(32)));

typedef struct {
    uint32_t lo, hi;
    uint8_t t, w; /* table, distance of the group's piece from the query's */
} Group;

/* Scan a group's f values for those within c - w of the query's next piece; collect candidates. */
static inline __attribute__((always_inline)) int scan_group(const View *v, const Query *q, const Group *g, CandList *list, Hits *out) {
    int t = g->t, j = (t + 1) % q->m, thr = q->c - g->w;
    const uint16_t *f = v->f[t];
    v16 vq, vt;
    for (int i = 0; i < 16; i++) {
        vq[i] = (uint16_t)q->qv[j];
        vt[i] = (uint16_t)thr;
    }
    for (uint32_t i = g->lo; i < g->hi; i += 16) {
        v16 x;
        memcpy(&x, f + i, sizeof x);
        x ^= vq;
        x = x - ((x >> 1) & 0x5555);
        x = (x & 0x3333) + ((x >> 2) & 0x3333);
        x = (x + (x >> 4)) & 0x0f0f;
        x = (x + (x >> 8)) & 0x001f;
        v16 hit = (v16)(x <= vt);
        v4q h = (v4q)hit;
        if (!(h[0] | h[1] | h[2] | h[3])) continue;
        uint32_t end = g->hi - i < 16 ? g->hi - i : 16;
        for (uint32_t k = 0; k < end; k++) {
            if (!hit[k]) continue;
            if (list->n == CANDS && verify_all(v, q, list, out) < 0) return -1;
            Cand *c = &list->c[list->n++];
            c->slot = i + k;
            c->k = 0;
            c->t = c->u = (uint8_t)t;
            c->dist = (int16_t)(g->w + x[k]);
            c->need = (uint8_t)(q->m - 2);
            c->have_k = 0;
            c->d[t] = g->w;
            c->d[j] = (uint8_t)x[k];
        }
    }
    return 0;
}

/* Every cache line scan_group reads of slots [lo, hi) (it reads whole vectors of 16). */
static inline void prefetch_group(const View *v, const Group *g) {
    const char *a = (const char *)(v->f[g->t] + g->lo), *end = (const char *)(v->f[g->t] + g->hi + 15);
    for (a = (const char *)((uintptr_t)a & ~(uintptr_t)63); a < end; a += 64) __builtin_prefetch(a);
}

#define BATCH 1024
#define AHEAD 4

static inline __attribute__((always_inline)) int scan_groups(const View *v, const Query *q, const Group *gs, int ng, CandList *list, Hits *out) {
    for (int i = 0; i < ng && i < AHEAD; i++) prefetch_group(v, &gs[i]);
    for (int i = 0; i < ng; i++) {
        if (i + AHEAD < ng) prefetch_group(v, &gs[i + AHEAD]);
        if (scan_group(v, q, &gs[i], list, out) < 0) return -1;
    }
    return 0;
}

/* Pieces within a of a query piece, by weight: Gosper's hack, resumable. */
typedef struct {
    int w, a, done;
    uint32_t x;
} Ball;

static inline int ball_next(Ball *b, uint32_t *x, int *w) {
    if (b->done) return 0;
    *x = b->x;
    *w = b->w;
    if (b->w == 0) {
        b->w = 1;
        b->x = 1;
    } else {
        uint32_t lowest = b->x & -b->x, ripple = b->x + lowest;
        b->x = (((ripple ^ b->x) >> 2) >> __builtin_ctz(lowest)) | ripple;
        if (b->x >= GROUPS) {
            b->w++;
            b->x = (1u << b->w) - 1;
        }
    }
    if (b->w > b->a || b->w > 16) b->done = 1;
    return 1;
}

/* All items within r of the query, appended to out as (k, distance). */
HOT static int search_one(const View *v, const uint8_t *h, int r, CandList *list, Hits *out) {
    Query q;
    int m = v->m;
    q.m = m;
    q.r = r;
    q.a = r / m;
    q.c = 2 * q.a + 1;
    for (int j = 0; j < m; j++) q.qv[j] = piece_of(h, j);
    int a = q.a < 16 ? q.a : 16;
    double ball = 0, comb = 1;
    for (int w = 0; w <= a; w++) {
        ball += comb;
        comb = comb * (16 - w) / (w + 1);
    }
    Group gs[BATCH];
    int ng = 0;
    list->n = 0;
    int sweep = ball * 4 > GROUPS; /* most groups: visit them in order */
    if (!sweep) /* the groups' offsets, all tables' at once */
        for (int t = 0; t < m; t++) {
            Ball it = {.w = 0, .a = a, .done = 0, .x = 0};
            uint32_t x;
            int w;
            while (ball_next(&it, &x, &w)) __builtin_prefetch(v->off[t] + (q.qv[t] ^ x));
        }
    for (int t = 0; t < m; t++) {
        const uint32_t *off = v->off[t];
        uint32_t qp = q.qv[t];
        Ball it = {.w = 0, .a = a, .done = 0, .x = 0};
        for (uint32_t P = 0, x; sweep ? P < GROUPS : 1; P++) {
            int w;
            if (sweep) {
                w = pop32(P ^ qp);
                if (w > a) continue;
                x = P ^ qp;
            } else if (!ball_next(&it, &x, &w)) {
                break;
            }
            uint32_t g = qp ^ x, lo = off[g], hi = off[g + 1];
            if (lo == hi) continue;
            gs[ng++] = (Group){.lo = lo, .hi = hi, .t = (uint8_t)t, .w = (uint8_t)w};
            if (ng == BATCH) {
                if (scan_groups(v, &q, gs, ng, list, out) < 0) return -1;
                ng = 0;
            }
        }
    }
    if (ng && scan_groups(v, &q, gs, ng, list, out) < 0) return -1;
    return list->n ? verify_all(v, &q, list, out) : 0;
}

static PyObject *hits_to_list(const void *ids, int ids64, Hits *h) {
    PyObject *list = PyList_New(h->len);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < h->len; i++) {
        uint32_t k = h->k[i];
        long long id = ids64 ? ((const int64_t *)ids)[k] : (long long)((const uint32_t *)ids)[k];
        PyObject *tup = Py_BuildValue("(Li)", id, (int)h->d[i]);
        if (!tup) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, tup);
    }
    return list;
}

/* The answer to nq queries: per query a list of (id, distance), hits k mapped through ids (int64 or
 * uint32); frees every Hits and all itself. failed: the search ran out of memory. */
static PyObject *results(Hits *all, Py_ssize_t nq, const void *ids, int ids64, int failed) {
    PyObject *result = failed || !all ? PyErr_NoMemory() : PyList_New(nq);
    for (Py_ssize_t i = 0; all && i < nq; i++) {
        if (result) {
            PyObject *l = hits_to_list(ids, ids64, &all[i]);
            if (!l) Py_CLEAR(result);
            else PyList_SET_ITEM(result, i, l);
        }
        PyMem_RawFree(all[i].k);
        PyMem_RawFree(all[i].d);
    }
    PyMem_Free(all);
    return result;
}

/* search(queries: bytes-like (nq * m * 2), radius) -> list of lists of (id, distance) */
static PyObject *Base_search(BaseObject *self, PyObject *args) {
    Py_buffer qb;
    int r;
    if (!PyArg_ParseTuple(args, "y*i", &qb, &r)) return NULL;
    View v;
    view_of(self, &v);
    Py_ssize_t hb = 2 * (Py_ssize_t)v.m, nq = qb.len / hb;
    if (qb.len % hb || r < 0) {
        PyBuffer_Release(&qb);
        PyErr_SetString(PyExc_ValueError, "queries must be whole hashes and radius >= 0");
        return NULL;
    }
    Hits *all = PyMem_Calloc(nq ? nq : 1, sizeof(Hits));
    CandList *cands = PyMem_Malloc(sizeof(CandList));
    int failed = 0;
    if (!all || !cands) {
        PyMem_Free(all);
        PyMem_Free(cands);
        PyBuffer_Release(&qb);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nq && !failed; i++)
        if (v.n && search_one(&v, (const uint8_t *)qb.buf + i * hb, r, cands, &all[i]) < 0) failed = 1;
    Py_END_ALLOW_THREADS
    PyObject *result = results(all, nq, v.ids, v.ids64, failed);
    PyMem_Free(cands);
    PyBuffer_Release(&qb);
    return result;
}

#define WALK 256

/* extract(out: writable (n * m * 2)) writes every item's hash, in id-node order, by following its
 * links: WALK items at a time, one hop each per round with the next round's loads prefetched
 * (one item after another, each hop waits a full memory latency: ~50 s at 10M instead of ~3). */
static PyObject *Base_extract(BaseObject *self, PyObject *args) {
    PyObject *o;
    if (!PyArg_ParseTuple(args, "O", &o)) return NULL;
    View v;
    view_of(self, &v);
    Py_buffer ob;
    if (get_buf(o, &ob, (Py_ssize_t)v.n * v.m * 2, 1, "out") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    uint32_t slot[WALK];
    for (uint32_t k0 = 0; k0 < v.n; k0 += WALK) {
        uint32_t nb = v.n - k0 < WALK ? v.n - k0 : WALK;
        for (uint32_t i = 0; i < nb; i++) slot[i] = v.id_next[k0 + i];
        for (int u = 0; u < v.m; u++) {
            int j = (u + 1) % v.m;
            for (uint32_t i = 0; i < nb; i++) {
                __builtin_prefetch(v.f[u] + slot[i]);
                if (u + 1 < v.m) __builtin_prefetch(v.q[u] + slot[i]);
            }
            if (u + 1 < v.m)
                for (uint32_t i = 0; i < nb; i++) __builtin_prefetch(v.off[u + 1] + v.f[u][slot[i]]);
            for (uint32_t i = 0; i < nb; i++) {
                uint32_t piece = v.f[u][slot[i]];
                uint8_t *h = (uint8_t *)ob.buf + (size_t)(k0 + i) * v.m * 2;
                h[2 * j] = (uint8_t)(piece >> 8);
                h[2 * j + 1] = (uint8_t)piece;
                if (u + 1 < v.m) slot[i] = next_slot(&v, u, slot[i]);
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ob);
    Py_RETURN_NONE;
}

static PyMethodDef Base_methods[] = {
    {"search", (PyCFunction)Base_search, METH_VARARGS, "search(queries, radius) -> [[(id, distance)]]"},
    {"extract", (PyCFunction)Base_extract, METH_VARARGS, "extract(out): every hash in id order"},
    {NULL},
};

static PyTypeObject BaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hashbank.index._hamming.Base",
    .tp_basicsize = sizeof(BaseObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Base_init,
    .tp_dealloc = (destructor)Base_dealloc,
    .tp_methods = Base_methods,
    .tp_doc = "An immutable, searchable chained pair index over buffers (see module doc).",
};

/* ---- build ---------------------------------------------------------------- */

typedef struct {
    uint32_t slot, hi;
} Big;

static int big_cmp(const void *x, const void *y) {
    uint32_t a = ((const Big *)x)->slot, b = ((const Big *)y)->slot;
    return (a > b) - (a < b);
}

/* Counting sort of the n items by piece t: off (GROUPS + 1 starts) and slot[i], item i's slot;
 * f[slot] gets the item's piece t+1 (mod m). */
static void sort_table(const uint8_t *H, uint32_t n, int m, int t, uint32_t *off, uint16_t *f, uint32_t *slot) {
    size_t hb = (size_t)m * 2;
    memset(off, 0, (GROUPS + 1) * 4);
    for (uint32_t i = 0; i < n; i++) off[piece_of(H + i * hb, t) + 1]++;
    for (size_t g = 1; g <= GROUPS; g++) off[g] += off[g - 1];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t g = piece_of(H + i * hb, t);
        uint32_t pos = off[g]++;
        slot[i] = pos;
        f[pos] = (uint16_t)piece_of(H + i * hb, (t + 1) % m);
    }
    /* off[g] now holds the end of group g, the start of g+1: shift back. */
    memmove(off + 1, off, GROUPS * 4);
    off[0] = 0;
    memset(f + n, 0, PAD * 2);
}

/* build(hashes, n, m, offs, fs, qs, last, id_next) -> [(bslot bytes, bhi bytes)] * (m-1):
 * fill the preallocated arrays for n hashes of m*2 bytes whose item i is id-node slot i
 * (ids sorted by the caller). */
static PyObject *build(PyObject *mod, PyObject *args) {
    PyObject *hashes, *offs, *fs, *qs, *lasto, *idn;
    unsigned int n;
    int m;
    if (!PyArg_ParseTuple(args, "OIiOOOOO", &hashes, &n, &m, &offs, &fs, &qs, &lasto, &idn)) return NULL;
    if (check_m(m) < 0) return NULL;
    BaseObject bufs; /* only its buffers are used, to acquire and release them in one place */
    memset(&bufs, 0, sizeof bufs);
    Py_buffer hb = {0};
    uint32_t *prev = NULL, *cur = NULL;
    Big *big = NULL;
    size_t nbig = 0, capbig = 0;
    PyObject *result = NULL;
    int ok = get_buf(hashes, &hb, (Py_ssize_t)n * m * 2, 0, "hashes") == 0 &&
             get_buf(idn, &bufs.id_next, (Py_ssize_t)n * 4, 1, "id_next") == 0 &&
             get_buf(lasto, &bufs.last, (Py_ssize_t)n * 4, 1, "last") == 0 &&
             get_bufs(offs, bufs.off, m, (GROUPS + 1) * 4, 1, "off") == 0 &&
             get_bufs(fs, bufs.f, m, ((Py_ssize_t)n + PAD) * 2, 1, "f") == 0 &&
             get_bufs(qs, bufs.q, m - 1, (Py_ssize_t)n, 1, "q") == 0;
    if (ok) {
        prev = PyMem_RawMalloc((size_t)(n ? n : 1) * 4);
        cur = PyMem_RawMalloc((size_t)(n ? n : 1) * 4);
        result = PyList_New(m - 1);
        if (!prev || !cur || !result) {
            ok = 0;
            if (!PyErr_Occurred()) PyErr_NoMemory();
        }
    }
    const uint8_t *H = hb.buf;
    size_t hbytes = (size_t)m * 2;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        sort_table(H, n, m, 0, bufs.off[0].buf, bufs.f[0].buf, prev);
        memcpy(bufs.id_next.buf, prev, (size_t)n * 4);
        Py_END_ALLOW_THREADS
    }
    for (int t = 1; ok && t < m; t++) {
        int failed = 0;
        nbig = 0;
        Py_BEGIN_ALLOW_THREADS
        const uint32_t *off = bufs.off[t].buf;
        uint8_t *q = bufs.q[t - 1].buf;
        sort_table(H, n, m, t, bufs.off[t].buf, bufs.f[t].buf, cur);
        for (uint32_t i = 0; i < n && !failed; i++) {
            uint32_t g = piece_of(H + i * hbytes, t), pos = cur[i] - off[g];
            q[prev[i]] = (uint8_t)pos;
            if (off[g + 1] - off[g] > QBIG) {
                if (nbig == capbig) {
                    size_t cap = capbig ? 2 * capbig : 1024;
                    Big *nb = PyMem_RawRealloc(big, cap * sizeof(Big));
                    if (!nb) {
                        failed = 1;
                        break;
                    }
                    big = nb;
                    capbig = cap;
                }
                big[nbig++] = (Big){.slot = prev[i], .hi = pos >> 8};
            }
        }
        if (!failed) qsort(big, nbig, sizeof(Big), big_cmp);
        Py_END_ALLOW_THREADS
        if (failed) {
            PyErr_NoMemory();
            ok = 0;
            break;
        }
        PyObject *bs = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)nbig * 4);
        PyObject *bh = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)nbig * 4);
        PyObject *pair = bs && bh ? PyTuple_Pack(2, bs, bh) : NULL;
        if (pair) {
            uint32_t *ps = (uint32_t *)PyBytes_AS_STRING(bs), *ph = (uint32_t *)PyBytes_AS_STRING(bh);
            for (size_t i = 0; i < nbig; i++) {
                ps[i] = big[i].slot;
                ph[i] = big[i].hi;
            }
        }
        Py_XDECREF(bs);
        Py_XDECREF(bh);
        if (!pair) {
            ok = 0;
            break;
        }
        PyList_SET_ITEM(result, t - 1, pair);
        uint32_t *tmp = prev;
        prev = cur;
        cur = tmp;
    }
    if (ok) {
        uint32_t *last = bufs.last.buf;
        for (uint32_t i = 0; i < n; i++) last[prev[i]] = i;
    }
    PyMem_RawFree(prev);
    PyMem_RawFree(cur);
    PyMem_RawFree(big);
    Base_release(&bufs);
    release(&hb);
    if (!ok) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/* ---- brute force (the small, recently added part) ------------------------- */

HOT static int scan_all(const uint8_t *H, Py_ssize_t n, Py_ssize_t hb, const uint8_t *q, int r, Hits *out) {
    Py_ssize_t words = hb / 8;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *h = H + i * hb;
        int d = 0;
        for (Py_ssize_t w = 0; w < words; w++) {
            uint64_t a, b;
            memcpy(&a, h + 8 * w, 8);
            memcpy(&b, q + 8 * w, 8);
            d += __builtin_popcountll(a ^ b);
        }
        for (Py_ssize_t j = words * 8; j < hb; j++) d += __builtin_popcount((unsigned)(h[j] ^ q[j]));
        if (d <= r && hits_push(out, (uint32_t)i, d) < 0) return -1;
    }
    return 0;
}

/* scan(hashes, ids(int64), n, hash_bytes, queries, radius) -> list of lists of (id, distance) */
static PyObject *scan(PyObject *mod, PyObject *args) {
    PyObject *ho, *io;
    Py_ssize_t n, hb;
    Py_buffer qb;
    int r;
    if (!PyArg_ParseTuple(args, "OOnny*i", &ho, &io, &n, &hb, &qb, &r)) return NULL;
    if (hb < 1 || qb.len % hb || n < 0) {
        PyBuffer_Release(&qb);
        PyErr_SetString(PyExc_ValueError, "bad scan arguments");
        return NULL;
    }
    Py_buffer H, I;
    if (get_buf(ho, &H, n * hb, 0, "hashes") < 0) {
        PyBuffer_Release(&qb);
        return NULL;
    }
    if (get_buf(io, &I, n * 8, 0, "ids") < 0) {
        PyBuffer_Release(&H);
        PyBuffer_Release(&qb);
        return NULL;
    }
    Py_ssize_t nq = qb.len / hb;
    Hits *all = PyMem_Calloc(nq ? nq : 1, sizeof(Hits));
    int failed = !all;
    if (all) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < nq && !failed; i++)
            if (scan_all(H.buf, n, hb, (const uint8_t *)qb.buf + i * hb, r, &all[i]) < 0) failed = 1;
        Py_END_ALLOW_THREADS
    }
    PyObject *result = results(all, nq, I.buf, 1, failed);
    PyBuffer_Release(&I);
    PyBuffer_Release(&H);
    PyBuffer_Release(&qb);
    return result;
}

static PyMethodDef module_methods[] = {
    {"build", build, METH_VARARGS, "Fill a base's arrays from hashes sorted by id; returns the big-group lists."},
    {"scan", scan, METH_VARARGS, "Brute-force radius search over a small array of hashes."},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hamming", "Exact Hamming radius search (C core).", -1,
                                    module_methods};

PyMODINIT_FUNC PyInit__hamming(void) {
    if (PyType_Ready(&BaseType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (!mod) return NULL;
    Py_INCREF(&BaseType);
    if (PyModule_AddObject(mod, "Base", (PyObject *)&BaseType) < 0) {
        Py_DECREF(&BaseType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
