/* Exact Hamming radius search over fixed-length binary hashes (hashbank.index).
 *
 * Layout ("circular multi-index"): a hash of 32*m bits is cut into m 32-bit
 * substrings. Table t holds every item once, grouped by the top p bits of its
 * substring t (offsets off_t, a counting sort) and keeps only the low 32-p bits
 * (suf_t, uint16) plus a pointer nxt_t to the same item's slot in table t+1;
 * the last table points into the id node (ids sorted ascending), whose id_next
 * points back into table 0. The prefix of a slot is implied by its group (dir_t
 * finds it quickly), so the whole hash is stored once, inside the tables, at
 * 2 bytes per substring: no separate copy of the hashes is needed to verify.
 *
 * Search is exact by the pigeonhole principle: with radii s_t where
 * sum(s_t + 1) >= r + 1, a hash within r of the query is within s_t of it in
 * some substring t. Each table is scanned over the groups whose prefix lies
 * within s_t of the query's, candidates are verified by walking their cycle,
 * and a hit is reported only from the first table that can see it.
 *
 * Plain C with the buffer protocol; no numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT
#endif

#define MAXM 16
#define DIRSHIFT 6
#define PAD 16

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline int pop32(uint32_t x) { return __builtin_popcount(x); }

/* ---- buffers ---------------------------------------------------------------- */

static int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t need, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) return -1;
    if (view->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: buffer has %zd bytes, need %zd", what, view->len, need);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ---- the searchable base -------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int m, p, ids64;
    uint32_t n;
    Py_buffer off[MAXM], suf[MAXM], nxt[MAXM], dir[MAXM];
    Py_buffer id_next, ids, dead;
    int nbufs; /* how many Py_buffers are held, for release */
} BaseObject;

typedef struct {
    const uint32_t *off[MAXM];
    const uint16_t *suf[MAXM];
    const uint32_t *nxt[MAXM];
    const uint32_t *dir[MAXM];
    const uint32_t *id_next;
    const void *ids;
    const uint8_t *dead;
    int m, p, ids64;
    uint32_t n;
} View;

static void view_of(BaseObject *b, View *v) {
    for (int t = 0; t < b->m; t++) {
        v->off[t] = b->off[t].buf;
        v->suf[t] = b->suf[t].buf;
        v->nxt[t] = b->nxt[t].buf;
        v->dir[t] = b->dir[t].buf;
    }
    v->id_next = b->id_next.buf;
    v->ids = b->ids.buf;
    v->dead = b->dead.buf;
    v->m = b->m;
    v->p = b->p;
    v->ids64 = b->ids64;
    v->n = b->n;
}

static void Base_dealloc(BaseObject *self) {
    for (int t = 0; t < self->nbufs; t++) {
        PyBuffer_Release(&self->off[t]);
        PyBuffer_Release(&self->suf[t]);
        PyBuffer_Release(&self->nxt[t]);
        PyBuffer_Release(&self->dir[t]);
    }
    if (self->nbufs >= 0 && self->id_next.obj) PyBuffer_Release(&self->id_next);
    if (self->ids.obj) PyBuffer_Release(&self->ids);
    if (self->dead.obj) PyBuffer_Release(&self->dead);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Base(m, p, n, offs, sufs, nxts, dirs, id_next, ids, ids_itemsize, dead) */
static int Base_init(BaseObject *self, PyObject *args, PyObject *kw) {
    int m, p, ids_itemsize;
    unsigned int n;
    PyObject *offs, *sufs, *nxts, *dirs, *id_next, *ids, *dead;
    if (!PyArg_ParseTuple(args, "iiIOOOOOOiO", &m, &p, &n, &offs, &sufs, &nxts, &dirs, &id_next, &ids,
                          &ids_itemsize, &dead))
        return -1;
    if (m < 1 || m > MAXM || p < 1 || p > 28 || 32 - p > 16 || (ids_itemsize != 4 && ids_itemsize != 8)) {
        PyErr_SetString(PyExc_ValueError, "bad index parameters");
        return -1;
    }
    if (self->nbufs) {
        PyErr_SetString(PyExc_RuntimeError, "Base already initialised");
        return -1;
    }
    self->m = m;
    self->p = p;
    self->n = n;
    self->ids64 = ids_itemsize == 8;
    Py_ssize_t groups = ((Py_ssize_t)1 << p) + 1;
    Py_ssize_t blocks = ((Py_ssize_t)n >> DIRSHIFT) + 2;
    for (int t = 0; t < m; t++) {
        if (get_buf(PyList_GetItem(offs, t), &self->off[t], groups * 4, 0, "off") < 0) goto fail;
        if (get_buf(PyList_GetItem(sufs, t), &self->suf[t], ((Py_ssize_t)n + PAD) * 2, 0, "suf") < 0) {
            PyBuffer_Release(&self->off[t]);
            goto fail;
        }
        if (get_buf(PyList_GetItem(nxts, t), &self->nxt[t], (Py_ssize_t)n * 4, 0, "nxt") < 0) {
            PyBuffer_Release(&self->off[t]);
            PyBuffer_Release(&self->suf[t]);
            goto fail;
        }
        if (get_buf(PyList_GetItem(dirs, t), &self->dir[t], blocks * 4, 0, "dir") < 0) {
            PyBuffer_Release(&self->off[t]);
            PyBuffer_Release(&self->suf[t]);
            PyBuffer_Release(&self->nxt[t]);
            goto fail;
        }
        self->nbufs = t + 1;
    }
    if (get_buf(id_next, &self->id_next, (Py_ssize_t)n * 4, 0, "id_next") < 0) goto fail;
    if (get_buf(ids, &self->ids, (Py_ssize_t)n * ids_itemsize, 0, "ids") < 0) goto fail;
    if (get_buf(dead, &self->dead, ((Py_ssize_t)n + 7) / 8, 0, "dead") < 0) goto fail;
    return 0;
fail:
    return -1;
}

/* Group (prefix) of slot pos in table t: the largest P with off[P] <= pos, between
 * the prefixes recorded at the block starts around pos. */
static inline uint32_t prefix_of(const View *v, int t, uint32_t pos) {
    const uint32_t *off = v->off[t];
    uint32_t b = pos >> DIRSHIFT;
    uint32_t lo = v->dir[t][b], hi = v->dir[t][b + 1];
    while (lo < hi) {
        uint32_t mid = (lo + hi + 1) >> 1;
        if (off[mid] <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

typedef struct {
    uint32_t qp[MAXM], qs[MAXM];
    int s[MAXM];
    int r;
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

/* Walk the cycle of the item at slot pos of table t (substring distance dt). */
static inline int verify(const View *v, const Query *q, int t, uint32_t pos, int dt, Hits *out) {
    int m = v->m, sb = 32 - v->p;
    int dist = dt;
    uint32_t cur = v->nxt[t][pos];
    for (int u = t + 1; u < m; u++) {
        int du = pop32(prefix_of(v, u, cur) ^ q->qp[u]) + pop32((uint32_t)v->suf[u][cur] ^ q->qs[u]);
        dist += du;
        if (dist > q->r) return 0;
        cur = v->nxt[u][cur];
    }
    uint32_t k = cur;
    if (v->dead[k >> 3] & (1u << (k & 7))) return 0;
    cur = v->id_next[k];
    for (int u = 0; u < t; u++) {
        int du = pop32(prefix_of(v, u, cur) ^ q->qp[u]) + pop32((uint32_t)v->suf[u][cur] ^ q->qs[u]);
        if (du <= q->s[u]) return 0; /* table u reports it */
        dist += du;
        if (dist > q->r) return 0;
        cur = v->nxt[u][cur];
    }
    (void)sb;
    return hits_push(out, k, dist);
}

typedef uint16_t v16 __attribute__((vector_size(32)));
typedef uint64_t v4q __attribute__((vector_size(32)));

/* Scan slots [lo, hi) of table t for suffixes within thr of the query's. */
static inline int scan_group(const View *v, const Query *q, int t, uint32_t lo, uint32_t hi, int dp, Hits *out) {
    const uint16_t *suf = v->suf[t];
    int thr = q->s[t] - dp;
    uint16_t qs = (uint16_t)q->qs[t];
    v16 vq, vt;
    for (int i = 0; i < 16; i++) {
        vq[i] = qs;
        vt[i] = (uint16_t)thr;
    }
    for (uint32_t i = lo; i < hi; i += 16) {
        v16 x;
        memcpy(&x, suf + i, sizeof x);
        x ^= vq;
        x = x - ((x >> 1) & 0x5555);
        x = (x & 0x3333) + ((x >> 2) & 0x3333);
        x = (x + (x >> 4)) & 0x0f0f;
        x = (x + (x >> 8)) & 0x001f;
        v16 hit = (v16)(x <= vt);
        v4q h = (v4q)hit;
        if (!(h[0] | h[1] | h[2] | h[3])) continue;
        uint32_t end = hi - i < 16 ? hi - i : 16;
        for (uint32_t j = 0; j < end; j++)
            if (hit[j] && verify(v, q, t, i + j, dp + (int)x[j], out) < 0) return -1;
    }
    return 0;
}

#define BATCH 2048
#ifndef AHEAD
#define AHEAD 12
#endif

static inline int scan_groups(const View *v, const Query *q, int t, const uint32_t *glo, const uint32_t *ghi,
                              const int *gdp, int ng, Hits *out) {
    const uint16_t *suf = v->suf[t];
    for (int i = 0; i < ng && i < AHEAD; i++) {
        __builtin_prefetch(suf + glo[i]);
        __builtin_prefetch(suf + ghi[i] - 1);
    }
    for (int i = 0; i < ng; i++) {
        if (i + AHEAD < ng) {
            __builtin_prefetch(suf + glo[i + AHEAD]);
            __builtin_prefetch(suf + ghi[i + AHEAD] - 1);
        }
        if (scan_group(v, q, t, glo[i], ghi[i], gdp[i], out) < 0) return -1;
    }
    return 0;
}

/* All items within q->r of the query, appended to out as (k, distance). */
HOT static int search_one(const View *v, const uint8_t *h, int r, Hits *out) {
    Query q;
    int m = v->m, p = v->p, sb = 32 - p;
    uint32_t smask = (1u << sb) - 1;
    q.r = r;
    for (int t = 0; t < m; t++) {
        uint32_t key = load_be32(h + 4 * t);
        q.qp[t] = key >> sb;
        q.qs[t] = key & smask;
        q.s[t] = (r + 1) / m + (t < (r + 1) % m ? 1 : 0) - 1;
    }
    uint32_t groups = 1u << p;
    for (int t = 0; t < m; t++) {
        int s = q.s[t];
        if (s < 0) continue;
        const uint32_t *off = v->off[t];
        uint32_t qp = q.qp[t];
        int smax = s < p ? s : p;
        /* Ball of prefixes within smax of qp; when that is most groups, sweep them all. */
        double ball = 0, c = 1;
        for (int w = 0; w <= smax; w++) {
            ball += c;
            c = c * (p - w) / (w + 1);
        }
        if (ball * 4 > groups) {
            for (uint32_t P = 0; P < groups; P++) {
                int dp = pop32(P ^ qp);
                if (dp <= s && off[P] < off[P + 1] && scan_group(v, &q, t, off[P], off[P + 1], dp, out) < 0)
                    return -1;
            }
            continue;
        }
        /* Collect the groups of the ball (their offsets load in parallel), then scan
         * them with the suffixes of group i + AHEAD already on their way. */
        uint32_t glo[BATCH], ghi[BATCH];
        int gdp[BATCH], nb = 0;
        for (int w = 0; w <= smax; w++) {
            uint32_t x = w ? (1u << w) - 1 : 0;
            for (;;) {
                uint32_t P = qp ^ x;
                uint32_t a = off[P], b = off[P + 1];
                if (a < b) {
                    glo[nb] = a;
                    ghi[nb] = b;
                    gdp[nb] = w;
                    if (++nb == BATCH) {
                        if (scan_groups(v, &q, t, glo, ghi, gdp, nb, out) < 0) return -1;
                        nb = 0;
                    }
                }
                if (w == 0) break;
                /* Gosper's hack: next w-subset of the p prefix bits. */
                uint32_t lowest = x & -x, ripple = x + lowest;
                x = (((ripple ^ x) >> 2) >> __builtin_ctz(lowest)) | ripple;
                if (x >= groups || x == 0) break;
            }
        }
        if (nb && scan_groups(v, &q, t, glo, ghi, gdp, nb, out) < 0) return -1;
    }
    return 0;
}

static PyObject *hits_to_list(const View *v, Hits *h) {
    PyObject *list = PyList_New(h->len);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < h->len; i++) {
        uint32_t k = h->k[i];
        long long id = v->ids64 ? ((const int64_t *)v->ids)[k] : (long long)((const uint32_t *)v->ids)[k];
        PyObject *tup = Py_BuildValue("(Li)", id, (int)h->d[i]);
        if (!tup) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, tup);
    }
    return list;
}

/* search(queries: bytes-like (nq * m * 4), radius) -> list of lists of (id, distance) */
static PyObject *Base_search(BaseObject *self, PyObject *args) {
    Py_buffer qb;
    int r;
    if (!PyArg_ParseTuple(args, "y*i", &qb, &r)) return NULL;
    View v;
    view_of(self, &v);
    Py_ssize_t hb = 4 * (Py_ssize_t)v.m, nq = qb.len / hb;
    if (qb.len % hb || r < 0) {
        PyBuffer_Release(&qb);
        PyErr_SetString(PyExc_ValueError, "queries must be whole hashes and radius >= 0");
        return NULL;
    }
    Hits *all = PyMem_Calloc(nq ? nq : 1, sizeof(Hits));
    int failed = 0;
    if (!all) {
        PyBuffer_Release(&qb);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nq && !failed; i++)
        if (v.n && search_one(&v, (const uint8_t *)qb.buf + i * hb, r, &all[i]) < 0) failed = 1;
    Py_END_ALLOW_THREADS
    PyObject *result = failed ? PyErr_NoMemory() : PyList_New(nq);
    for (Py_ssize_t i = 0; i < nq; i++) {
        if (result) {
            PyObject *l = hits_to_list(&v, &all[i]);
            if (!l) Py_CLEAR(result);
            else PyList_SET_ITEM(result, i, l);
        }
        PyMem_RawFree(all[i].k);
        PyMem_RawFree(all[i].d);
    }
    PyMem_Free(all);
    PyBuffer_Release(&qb);
    return result;
}

/* extract(out: writable (n * m * 4)) writes every item's hash, in id-node order. */
static PyObject *Base_extract(BaseObject *self, PyObject *args) {
    PyObject *o;
    if (!PyArg_ParseTuple(args, "O", &o)) return NULL;
    View v;
    view_of(self, &v);
    Py_buffer ob;
    if (get_buf(o, &ob, (Py_ssize_t)v.n * v.m * 4, 1, "out") < 0) return NULL;
    int sb = 32 - v.p;
    Py_BEGIN_ALLOW_THREADS
    for (uint32_t k = 0; k < v.n; k++) {
        uint8_t *h = (uint8_t *)ob.buf + (size_t)k * v.m * 4;
        uint32_t cur = v.id_next[k];
        for (int t = 0; t < v.m; t++) {
            uint32_t key = (prefix_of(&v, t, cur) << sb) | v.suf[t][cur];
            h[4 * t] = key >> 24;
            h[4 * t + 1] = key >> 16;
            h[4 * t + 2] = key >> 8;
            h[4 * t + 3] = key;
            cur = v.nxt[t][cur];
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
    .tp_doc = "An immutable, searchable circular multi-index over buffers (see module doc).",
};

/* ---- build ---------------------------------------------------------------- */

/* build(hashes, n, m, p, offs, sufs, nxts, dirs, id_next): fill the preallocated arrays
 * for n hashes of m*4 bytes whose item i is id-node slot i (ids sorted by the caller). */
static PyObject *build(PyObject *mod, PyObject *args) {
    PyObject *hashes, *offs, *sufs, *nxts, *dirs, *idn;
    unsigned int n;
    int m, p;
    if (!PyArg_ParseTuple(args, "OIiiOOOOO", &hashes, &n, &m, &p, &offs, &sufs, &nxts, &dirs, &idn)) return NULL;
    if (m < 1 || m > MAXM || p < 16 || p > 28) {
        PyErr_SetString(PyExc_ValueError, "bad index parameters");
        return NULL;
    }
    Py_buffer hb, ob[MAXM], sb_[MAXM], nb[MAXM], db[MAXM], ib;
    int got = 0;
    Py_ssize_t groups = ((Py_ssize_t)1 << p) + 1, blocks = ((Py_ssize_t)n >> DIRSHIFT) + 2;
    if (get_buf(hashes, &hb, (Py_ssize_t)n * m * 4, 0, "hashes") < 0) return NULL;
    if (get_buf(idn, &ib, (Py_ssize_t)n * 4, 1, "id_next") < 0) {
        PyBuffer_Release(&hb);
        return NULL;
    }
    int ok = 1;
    for (; got < m; got++) {
        if (get_buf(PyList_GetItem(offs, got), &ob[got], groups * 4, 1, "off") < 0) { ok = 0; break; }
        if (get_buf(PyList_GetItem(sufs, got), &sb_[got], ((Py_ssize_t)n + PAD) * 2, 1, "suf") < 0) {
            PyBuffer_Release(&ob[got]); ok = 0; break;
        }
        if (get_buf(PyList_GetItem(nxts, got), &nb[got], (Py_ssize_t)n * 4, 1, "nxt") < 0) {
            PyBuffer_Release(&ob[got]); PyBuffer_Release(&sb_[got]); ok = 0; break;
        }
        if (get_buf(PyList_GetItem(dirs, got), &db[got], blocks * 4, 1, "dir") < 0) {
            PyBuffer_Release(&ob[got]); PyBuffer_Release(&sb_[got]); PyBuffer_Release(&nb[got]); ok = 0; break;
        }
    }
    uint32_t *prev = NULL, *cur = NULL, *cursor = NULL;
    if (ok) {
        prev = PyMem_RawMalloc((size_t)(n ? n : 1) * 4);
        cur = PyMem_RawMalloc((size_t)(n ? n : 1) * 4);
        cursor = PyMem_RawMalloc((size_t)groups * 4);
        if (!prev || !cur || !cursor) {
            ok = 0;
            PyErr_NoMemory();
        }
    }
    if (ok) {
        const uint8_t *H = hb.buf;
        int shift = 32 - p;
        uint32_t smask = (1u << shift) - 1;
        Py_BEGIN_ALLOW_THREADS
        for (int t = 0; t < m; t++) {
            uint32_t *off = ob[t].buf, *dir = db[t].buf, *nxt_prev = t ? nb[t - 1].buf : NULL;
            uint16_t *suf = sb_[t].buf;
            memset(cursor, 0, (size_t)groups * 4);
            for (uint32_t i = 0; i < n; i++) cursor[(load_be32(H + (size_t)i * m * 4 + 4 * t) >> shift) + 1]++;
            for (Py_ssize_t g = 1; g < groups; g++) cursor[g] += cursor[g - 1];
            memcpy(off, cursor, (size_t)groups * 4);
            for (uint32_t i = 0; i < n; i++) {
                uint32_t key = load_be32(H + (size_t)i * m * 4 + 4 * t);
                uint32_t pos = cursor[key >> shift]++;
                suf[pos] = (uint16_t)(key & smask);
                cur[i] = pos;
                if (t) nxt_prev[prev[i]] = pos;
                else ((uint32_t *)ib.buf)[i] = pos;
            }
            memset(suf + n, 0, PAD * 2);
            /* dir[b]: the group of slot b*64 (of the last slot past the end). */
            uint32_t g = 0;
            for (Py_ssize_t b = 0; b < blocks; b++) {
                uint64_t pos = (uint64_t)b << DIRSHIFT;
                if (pos >= n) pos = n ? n - 1 : 0;
                while (g + 1 < (uint32_t)(groups - 1) && off[g + 1] <= pos) g++;
                dir[b] = g;
            }
            uint32_t *tmp = prev;
            prev = cur;
            cur = tmp;
        }
        uint32_t *last = nb[m - 1].buf;
        for (uint32_t i = 0; i < n; i++) last[prev[i]] = i;
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(prev);
    PyMem_RawFree(cur);
    PyMem_RawFree(cursor);
    for (int t = 0; t < got; t++) {
        PyBuffer_Release(&ob[t]);
        PyBuffer_Release(&sb_[t]);
        PyBuffer_Release(&nb[t]);
        PyBuffer_Release(&db[t]);
    }
    PyBuffer_Release(&ib);
    PyBuffer_Release(&hb);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ---- brute force (the small, recently added part) ------------------------- */

HOT static int scan_all(const uint8_t *H, const void *ids, int ids64, Py_ssize_t n, Py_ssize_t hb, const uint8_t *q,
                        int r, Hits *out) {
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
    (void)ids;
    (void)ids64;
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
            if (scan_all(H.buf, I.buf, 1, n, hb, (const uint8_t *)qb.buf + i * hb, r, &all[i]) < 0) failed = 1;
        Py_END_ALLOW_THREADS
    }
    PyObject *result = failed ? PyErr_NoMemory() : PyList_New(nq);
    for (Py_ssize_t i = 0; all && i < nq; i++) {
        if (result) {
            PyObject *l = PyList_New(all[i].len);
            for (Py_ssize_t j = 0; l && j < all[i].len; j++) {
                PyObject *tup = Py_BuildValue("(Li)", (long long)((const int64_t *)I.buf)[all[i].k[j]], all[i].d[j]);
                if (!tup) Py_CLEAR(l);
                else PyList_SET_ITEM(l, j, tup);
            }
            if (!l) Py_CLEAR(result);
            else PyList_SET_ITEM(result, i, l);
        }
        PyMem_RawFree(all[i].k);
        PyMem_RawFree(all[i].d);
    }
    PyMem_Free(all);
    PyBuffer_Release(&I);
    PyBuffer_Release(&H);
    PyBuffer_Release(&qb);
    return result;
}

static PyMethodDef module_methods[] = {
    {"build", build, METH_VARARGS, "Fill a base's arrays from hashes sorted by id."},
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
