/*
 * wandblite._speedups: optional C accelerators for the two hottest paths, nothing else.
 *
 *   frame_log(data, ts, step, commit, kind, max_payload) -> bytes | None
 *       The whole framed record (format/SPEC.md: 10-byte frame header, then the payload) of a
 *       history log call whose values are all plain scalars (exact float, int within int64, bool,
 *       str), or None when the call is anything else (the Python path then does the full work,
 *       validation and error messages included). The payload is byte-identical to what
 *       msgpack.Packer(use_bin_type=False).pack([ts, data, step, commit]) produces. ts None means
 *       now: the value time.time() gives (the same clock and conversion), read here to spare the
 *       hot path a call.
 *
 *   scan(buf, pos, base, kinds, decode_kind, limit) -> (records, pos)
 *       Whole, verified records of a read window, from index pos, as (base + offset, kind, obj)
 *       tuples: obj is the payload bytes, or, for records of decode_kind whose payload is a flat
 *       [ts, {str: scalar}, step, commit] list, that list decoded exactly as
 *       msgpack.unpackb(payload, raw=False, strict_map_key=False, unicode_errors="replace") would.
 *       Stops before the first frame that is incomplete, insane or fails its checksum (the Python
 *       reader handles every such case), or after `limit` records. `kinds`: None, or a 256-byte
 *       bytes object whose nonzero entries name the kinds to return (others are verified, skipped).
 *
 *       The returned tuples and decoded lists are untracked by the garbage collector (they hold
 *       no container but a dict of scalars, itself untracked): a batch of them alive does not
 *       make every collection walk them.
 *
 *   fold_scalars(records, i, step, last, start, offset_rt, summary, rows, kind) -> (i, step, last, n)
 *       Fold.fold_records' plain case (fold.py) for records scan decoded: a run of scalar log
 *       records that each make a new row, folded without a Python step per record; it stops at
 *       the first record it does not take and the Python fold goes on from there. The summary
 *       takes the rows as update_rows does.
 *
 *   update_rows(summary, rows) -> None
 *       `for row in rows: summary.update(row)` (Fold.add_rows), with the same result, key order
 *       included, without the update of a row whose key objects the next row repeats in the
 *       same order (the next update sets all of them): a run of rows of one shape costs one
 *       update and a pointer comparison per key and row.
 *
 *   crc32(data, seed=0) -> int      zlib.crc32's result, for tests.
 *
 * The rules live in Python: which rows a log call makes is the fold's business (fold.py), and
 * fold_scalars is the twin of the one case fold.py's fold_records inlines, written beside it and
 * taking nothing else. Every function has a pure Python equivalent the package uses when this
 * module is not built; tests/core/test_speedups.py and tests/core/test_fold_fastpath.py check the
 * two agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define RECORD_MAGIC 0xD7
#define FRAME_HEADER 10
#define MAX_RECORD (64 << 20) /* format.MAX_RECORD_SIZE; the module exports it and format checks */

/* ------------------------------------------------------------------ CRC-32 (zlib's polynomial) */

static uint32_t crc_tab[8][256];

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_tab[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc_tab[0][c & 0xff] ^ (c >> 8);
            crc_tab[k][n] = c;
        }
    }
}

/* zlib.crc32(data, seed): the running value `seed` is pre- and post-conditioned. */
static uint32_t crc32_of(uint32_t seed, const unsigned char *p, size_t len)
{
    uint32_t c = ~seed;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (len >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= c;
        c = crc_tab[7][a & 0xff] ^ crc_tab[6][(a >> 8) & 0xff] ^ crc_tab[5][(a >> 16) & 0xff] ^
            crc_tab[4][a >> 24] ^ crc_tab[3][b & 0xff] ^ crc_tab[2][(b >> 8) & 0xff] ^
            crc_tab[1][(b >> 16) & 0xff] ^ crc_tab[0][b >> 24];
        p += 8;
        len -= 8;
    }
#endif
    while (len--)
        c = crc_tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* ------------------------------------------------------------------ msgpack encoding (subset) */

typedef struct {
    unsigned char *p;
    size_t len, cap;
    unsigned char small[2048];
} Buf;

static int buf_reserve(Buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap * 2;
    while (cap < b->len + extra)
        cap *= 2;
    unsigned char *np;
    if (b->p == b->small) {
        np = PyMem_Malloc(cap);
        if (np)
            memcpy(np, b->p, b->len);
    } else {
        np = PyMem_Realloc(b->p, cap);
    }
    if (!np) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

static void buf_free(Buf *b)
{
    if (b->p != b->small)
        PyMem_Free(b->p);
}

static inline void put_be16(unsigned char *q, uint16_t v)
{
    q[0] = (unsigned char)(v >> 8);
    q[1] = (unsigned char)v;
}

static inline void put_be32(unsigned char *q, uint32_t v)
{
    q[0] = (unsigned char)(v >> 24);
    q[1] = (unsigned char)(v >> 16);
    q[2] = (unsigned char)(v >> 8);
    q[3] = (unsigned char)v;
}

static inline void put_be64(unsigned char *q, uint64_t v)
{
    put_be32(q, (uint32_t)(v >> 32));
    put_be32(q + 4, (uint32_t)v);
}

/* Result codes of the packers: 0 packed, 1 not a fast-path value (no Python error set), -1 error. */

static int pack_float(Buf *b, double d)
{
    uint64_t u;
    if (buf_reserve(b, 9))
        return -1;
    memcpy(&u, &d, 8);
    b->p[b->len] = 0xcb;
    put_be64(b->p + b->len + 1, u);
    b->len += 9;
    return 0;
}

/* msgpack-python's choice of the smallest encoding: unsigned forms for positives. */
static int pack_int(Buf *b, PyObject *o)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow)
        return 1; /* beyond int64: the Python path decides (wandb stores such ints as floats) */
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (buf_reserve(b, 9))
        return -1;
    unsigned char *q = b->p + b->len;
    if (v >= 0) {
        if (v < 128) {
            q[0] = (unsigned char)v;
            b->len += 1;
        } else if (v < 256) {
            q[0] = 0xcc;
            q[1] = (unsigned char)v;
            b->len += 2;
        } else if (v < 65536) {
            q[0] = 0xcd;
            put_be16(q + 1, (uint16_t)v);
            b->len += 3;
        } else if (v <= 0xffffffffLL) {
            q[0] = 0xce;
            put_be32(q + 1, (uint32_t)v);
            b->len += 5;
        } else {
            q[0] = 0xcf;
            put_be64(q + 1, (uint64_t)v);
            b->len += 9;
        }
    } else {
        if (v >= -32) {
            q[0] = (unsigned char)(int8_t)v;
            b->len += 1;
        } else if (v >= -128) {
            q[0] = 0xd0;
            q[1] = (unsigned char)(int8_t)v;
            b->len += 2;
        } else if (v >= -32768) {
            q[0] = 0xd1;
            put_be16(q + 1, (uint16_t)(int16_t)v);
            b->len += 3;
        } else if (v >= -2147483648LL) {
            q[0] = 0xd2;
            put_be32(q + 1, (uint32_t)(int32_t)v);
            b->len += 5;
        } else {
            q[0] = 0xd3;
            put_be64(q + 1, (uint64_t)v);
            b->len += 9;
        }
    }
    return 0;
}

/* A str as msgpack's old "raw" family (use_bin_type=False: fixstr, raw16, raw32; no str8). */
static int pack_str(Buf *b, PyObject *o)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear(); /* lone surrogates: the Python path reports or encodes them */
            return 1;
        }
        return -1;
    }
    if ((uint64_t)n > 0xffffffffULL)
        return 1;
    if (buf_reserve(b, (size_t)n + 5))
        return -1;
    unsigned char *q = b->p + b->len;
    if (n < 32) {
        q[0] = (unsigned char)(0xa0 | n);
        q += 1;
    } else if (n < 65536) {
        q[0] = 0xda;
        put_be16(q + 1, (uint16_t)n);
        q += 3;
    } else {
        q[0] = 0xdb;
        put_be32(q + 1, (uint32_t)n);
        q += 5;
    }
    memcpy(q, s, (size_t)n);
    b->len = (size_t)(q - b->p) + (size_t)n;
    return 0;
}

static int pack_scalar(Buf *b, PyObject *v)
{
    if (PyFloat_CheckExact(v))
        return pack_float(b, PyFloat_AS_DOUBLE(v));
    if (PyLong_CheckExact(v))
        return pack_int(b, v);
    if (v == Py_True || v == Py_False) {
        if (buf_reserve(b, 1))
            return -1;
        b->p[b->len++] = v == Py_True ? 0xc3 : 0xc2;
        return 0;
    }
    if (PyUnicode_CheckExact(v))
        return pack_str(b, v);
    return 1;
}

static int pack_nil(Buf *b)
{
    if (buf_reserve(b, 1))
        return -1;
    b->p[b->len++] = 0xc0;
    return 0;
}

/* time.time(): CLOCK_REALTIME in nanoseconds, then CPython's _PyTime_AsSecondsDouble conversion. */
static int now_seconds(double *out)
{
    struct timespec t;
    if (clock_gettime(CLOCK_REALTIME, &t) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int64_t ns = (int64_t)t.tv_sec * 1000000000 + (int64_t)t.tv_nsec;
    if (ns % 1000000000 == 0)
        *out = (double)(ns / 1000000000);
    else
        *out = (double)ns / 1e9;
    return 0;
}

static PyObject *frame_log(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "frame_log(data, ts, step, commit, kind, max_payload)");
        return NULL;
    }
    PyObject *data = args[0], *ts = args[1], *step = args[2], *commit = args[3];
    long kind = PyLong_AsLong(args[4]);
    Py_ssize_t max_payload = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    if (!PyDict_CheckExact(data) || !(ts == Py_None || PyFloat_CheckExact(ts)) || kind < 0 || kind > 255)
        Py_RETURN_NONE;
    if (!(step == Py_None || PyLong_CheckExact(step)))
        Py_RETURN_NONE;
    if (!(commit == Py_None || commit == Py_True || commit == Py_False))
        Py_RETURN_NONE;

    Buf b;
    b.p = b.small;
    b.cap = sizeof(b.small);
    b.len = FRAME_HEADER; /* the frame header is filled in last */
    int rc = 0;

    double when;
    if (ts == Py_None) {
        if (now_seconds(&when))
            return NULL;
    } else {
        when = PyFloat_AS_DOUBLE(ts);
    }
    b.p[b.len++] = 0x94; /* [ts, data, step, commit] */
    if ((rc = pack_float(&b, when)) != 0)
        goto out;
    Py_ssize_t n = PyDict_GET_SIZE(data);
    if ((rc = buf_reserve(&b, 5)) != 0)
        goto out;
    if (n < 16) {
        b.p[b.len++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        b.p[b.len] = 0xde;
        put_be16(b.p + b.len + 1, (uint16_t)n);
        b.len += 3;
    } else {
        b.p[b.len] = 0xdf;
        put_be32(b.p + b.len + 1, (uint32_t)n);
        b.len += 5;
    }
    Py_ssize_t it = 0;
    PyObject *k, *v;
    while (PyDict_Next(data, &it, &k, &v)) {
        if (!PyUnicode_CheckExact(k)) {
            rc = 1;
            goto out;
        }
        if ((rc = pack_str(&b, k)) != 0 || (rc = pack_scalar(&b, v)) != 0)
            goto out;
    }
    if (PyDict_GET_SIZE(data) != n) { /* cannot happen without a __del__ mutating it; be safe */
        rc = 1;
        goto out;
    }
    rc = step == Py_None ? pack_nil(&b) : pack_int(&b, step);
    if (rc)
        goto out;
    if ((rc = buf_reserve(&b, 1)) != 0)
        goto out;
    b.p[b.len++] = commit == Py_None ? 0xc0 : (commit == Py_True ? 0xc3 : 0xc2);

out:
    if (rc != 0) {
        buf_free(&b);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    size_t plen = b.len - FRAME_HEADER;
    if ((Py_ssize_t)plen > max_payload) {
        buf_free(&b);
        Py_RETURN_NONE; /* the Python path reports the oversized record */
    }
    uint32_t crc = crc32_of((uint32_t)kind, b.p + FRAME_HEADER, plen);
    unsigned char *h = b.p;
    h[0] = RECORD_MAGIC;
    h[1] = (unsigned char)kind;
    /* little-endian u32 length and crc (format/SPEC.md) */
    h[2] = (unsigned char)plen;
    h[3] = (unsigned char)(plen >> 8);
    h[4] = (unsigned char)(plen >> 16);
    h[5] = (unsigned char)(plen >> 24);
    h[6] = (unsigned char)crc;
    h[7] = (unsigned char)(crc >> 8);
    h[8] = (unsigned char)(crc >> 16);
    h[9] = (unsigned char)(crc >> 24);
    PyObject *res = PyBytes_FromStringAndSize((const char *)b.p, (Py_ssize_t)b.len);
    buf_free(&b);
    return res;
}

/* ------------------------------------------------------------------ msgpack decoding (subset) */

/* Map keys repeat on every row: a small cache of decoded key strings saves their allocation. */
#define KEY_SLOTS 1024
#define KEY_MAX 64

typedef struct {
    PyObject *str;
    Py_ssize_t len;
    unsigned char raw[KEY_MAX];
} KeySlot;

static KeySlot key_cache[KEY_SLOTS];

/* The slot the key at each map position had in the previous row: rows repeat their keys in the
 * same order, so most lookups are one memcmp, without hashing. */
#define POS_SLOTS 64
static unsigned short pos_slot[POS_SLOTS];

/* pos: 0 for a value (never cached), else 1 + the key's position in its map. */
static PyObject *decode_str(const unsigned char *s, Py_ssize_t n, Py_ssize_t pos)
{
    if (pos == 0 || n > KEY_MAX)
        return PyUnicode_DecodeUTF8((const char *)s, n, "replace");
    KeySlot *slot;
    if (pos <= POS_SLOTS) {
        slot = &key_cache[pos_slot[pos - 1]];
        if (slot->str != NULL && slot->len == n && memcmp(slot->raw, s, (size_t)n) == 0)
            return Py_NewRef(slot->str);
    }
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    unsigned short idx = (unsigned short)(h & (KEY_SLOTS - 1));
    if (pos <= POS_SLOTS)
        pos_slot[pos - 1] = idx;
    slot = &key_cache[idx];
    if (slot->str != NULL && slot->len == n && memcmp(slot->raw, s, (size_t)n) == 0)
        return Py_NewRef(slot->str);
    PyObject *o = PyUnicode_DecodeUTF8((const char *)s, n, "replace");
    if (o == NULL)
        return NULL;
    Py_XSETREF(slot->str, Py_NewRef(o));
    slot->len = n;
    memcpy(slot->raw, s, (size_t)n);
    return o;
}

typedef struct {
    const unsigned char *p, *end;
} Rd;

static inline uint16_t be16(const unsigned char *q) { return (uint16_t)((q[0] << 8) | q[1]); }
static inline uint32_t be32(const unsigned char *q)
{
    return ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
}
static inline uint64_t be64(const unsigned char *q) { return ((uint64_t)be32(q) << 32) | be32(q + 4); }

#define NEED(r, k)                                                                                 \
    if ((size_t)((r)->end - (r)->p) < (size_t)(k))                                                 \
        return NULL;

/* One scalar (nil, bool, int, float, str). NULL with no error set: outside the subset.
 * key: 0 for a value, 1 + its position for a map key (decoded through the key cache). */
static PyObject *read_scalar(Rd *r, Py_ssize_t key)
{
    NEED(r, 1);
    unsigned char t = *r->p++;
    if (t <= 0x7f)
        return PyLong_FromLong(t);
    if (t >= 0xe0)
        return PyLong_FromLong((int8_t)t);
    if ((t & 0xe0) == 0xa0) {
        Py_ssize_t n = t & 0x1f;
        NEED(r, n);
        r->p += n;
        return decode_str(r->p - n, n, key);
    }
    switch (t) {
    case 0xc0:
        return Py_NewRef(Py_None);
    case 0xc2:
        return Py_NewRef(Py_False);
    case 0xc3:
        return Py_NewRef(Py_True);
    case 0xca: {
        NEED(r, 4);
        uint32_t u = be32(r->p);
        float f;
        memcpy(&f, &u, 4);
        r->p += 4;
        return PyFloat_FromDouble((double)f);
    }
    case 0xcb: {
        NEED(r, 8);
        uint64_t u = be64(r->p);
        double d;
        memcpy(&d, &u, 8);
        r->p += 8;
        return PyFloat_FromDouble(d);
    }
    case 0xcc:
        NEED(r, 1);
        return PyLong_FromLong(*r->p++);
    case 0xcd:
        NEED(r, 2);
        r->p += 2;
        return PyLong_FromLong(be16(r->p - 2));
    case 0xce:
        NEED(r, 4);
        r->p += 4;
        return PyLong_FromUnsignedLong(be32(r->p - 4));
    case 0xcf:
        NEED(r, 8);
        r->p += 8;
        return PyLong_FromUnsignedLongLong(be64(r->p - 8));
    case 0xd0:
        NEED(r, 1);
        return PyLong_FromLong((int8_t)*r->p++);
    case 0xd1:
        NEED(r, 2);
        r->p += 2;
        return PyLong_FromLong((int16_t)be16(r->p - 2));
    case 0xd2:
        NEED(r, 4);
        r->p += 4;
        return PyLong_FromLong((int32_t)be32(r->p - 4));
    case 0xd3:
        NEED(r, 8);
        r->p += 8;
        return PyLong_FromLongLong((int64_t)be64(r->p - 8));
    case 0xd9: {
        NEED(r, 1);
        Py_ssize_t n = *r->p++;
        NEED(r, n);
        r->p += n;
        return decode_str(r->p - n, n, key);
    }
    case 0xda: {
        NEED(r, 2);
        Py_ssize_t n = be16(r->p);
        r->p += 2;
        NEED(r, n);
        r->p += n;
        return decode_str(r->p - n, n, key);
    }
    case 0xdb: {
        NEED(r, 4);
        Py_ssize_t n = (Py_ssize_t)be32(r->p);
        r->p += 4;
        NEED(r, n);
        r->p += n;
        return decode_str(r->p - n, n, key);
    }
    default:
        return NULL; /* bin, ext, nested containers: msgpack's own unpacker decides */
    }
}

/* [ts, {str: scalar}, step, commit] -> list, or NULL (no error set) when outside the subset. */
static PyObject *decode_log(const unsigned char *p, size_t len)
{
    Rd r = {p, p + len};
    Rd *rp = &r;
    PyObject *list = NULL, *dict = NULL, *o = NULL;
    if (len < 1 || *r.p != 0x94)
        return NULL;
    r.p++;
    list = PyList_New(4);
    if (list == NULL)
        return NULL;
    if ((o = read_scalar(rp, 0)) == NULL)
        goto fail;
    PyList_SET_ITEM(list, 0, o);
    if (r.p >= r.end)
        goto fail;
    Py_ssize_t n;
    unsigned char t = *r.p++;
    if ((t & 0xf0) == 0x80) {
        n = t & 0x0f;
    } else if (t == 0xde && r.end - r.p >= 2) {
        n = be16(r.p);
        r.p += 2;
    } else if (t == 0xdf && r.end - r.p >= 4) {
        n = (Py_ssize_t)be32(r.p);
        r.p += 4;
    } else {
        goto fail;
    }
    if (n > r.end - r.p)
        goto fail; /* each entry takes at least two bytes; never trust a count blindly */
#if PY_VERSION_HEX < 0x030D0000
    dict = _PyDict_NewPresized(n); /* no resize while filling (exported, not public, before 3.13) */
#else
    dict = PyDict_New();
#endif
    if (dict == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (r.p >= r.end || !((*r.p & 0xe0) == 0xa0 || *r.p == 0xd9 || *r.p == 0xda || *r.p == 0xdb))
            goto fail; /* a non-str key: the general unpacker handles it */
        PyObject *k = read_scalar(rp, i + 1);
        if (k == NULL)
            goto fail;
        PyObject *v = read_scalar(rp, 0);
        if (v == NULL) {
            Py_DECREF(k);
            goto fail;
        }
        int e = PyDict_SetItem(dict, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (e < 0)
            goto fail;
    }
    PyList_SET_ITEM(list, 1, dict);
    dict = NULL;
    for (int j = 2; j < 4; j++) {
        if ((o = read_scalar(rp, 0)) == NULL)
            goto fail;
        PyList_SET_ITEM(list, j, o);
    }
    if (r.p != r.end)
        goto fail; /* trailing bytes: msgpack raises ExtraData, so must we (via the fallback) */
    return list;
fail:
    Py_XDECREF(dict);
    Py_XDECREF(list); /* unset items are NULL; list_dealloc skips them */
    return NULL;
}

static PyObject *scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan(buf, pos, base, kinds, decode_kind, limit)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    long long base = PyLong_AsLongLong(args[2]);
    PyObject *kinds = args[3];
    long decode_kind = PyLong_AsLong(args[4]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    PyObject *out = NULL;
    if (PyErr_Occurred())
        goto done;
    const unsigned char *mask = NULL;
    if (kinds != Py_None) {
        if (!PyBytes_Check(kinds) || PyBytes_GET_SIZE(kinds) != 256) {
            PyErr_SetString(PyExc_TypeError, "kinds must be None or 256 bytes");
            goto done;
        }
        mask = (const unsigned char *)PyBytes_AS_STRING(kinds);
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t n = view.len;
    out = PyList_New(0);
    if (out == NULL || i < 0)
        goto done;
    while (i + FRAME_HEADER <= n && PyList_GET_SIZE(out) < limit) {
        const unsigned char *h = buf + i;
        uint32_t length = (uint32_t)h[2] | ((uint32_t)h[3] << 8) | ((uint32_t)h[4] << 16) | ((uint32_t)h[5] << 24);
        uint32_t crc = (uint32_t)h[6] | ((uint32_t)h[7] << 8) | ((uint32_t)h[8] << 16) | ((uint32_t)h[9] << 24);
        int kind = h[1];
        if (h[0] != RECORD_MAGIC || length == 0 || length > MAX_RECORD || (Py_ssize_t)length > n - i - FRAME_HEADER)
            break;
        const unsigned char *payload = h + FRAME_HEADER;
        if (crc32_of((uint32_t)kind, payload, length) != crc)
            break;
        if (mask == NULL || mask[kind]) {
            PyObject *obj = NULL;
            if (kind == decode_kind) {
                obj = decode_log(payload, length);
                if (obj == NULL && PyErr_Occurred())
                    goto fail;
            }
            if (obj == NULL) {
                obj = PyBytes_FromStringAndSize((const char *)payload, length);
                if (obj == NULL)
                    goto fail;
            }
            PyObject *tup = PyTuple_New(3), *off = PyLong_FromLongLong(base + (long long)i);
            if (tup == NULL || off == NULL) {
                Py_XDECREF(tup);
                Py_XDECREF(off);
                Py_DECREF(obj);
                goto fail;
            }
            PyTuple_SET_ITEM(tup, 0, off);
            PyTuple_SET_ITEM(tup, 1, PyLong_FromLong(kind)); /* small ints: cached, never fail */
            PyTuple_SET_ITEM(tup, 2, obj);
            /* Neither can be part of a reference cycle: the tuple holds two ints and bytes or the
             * decoded list, which holds scalars and a dict of scalars (a dict not tracked by the
             * garbage collector). Untracked, the collector does not walk them again and again
             * while a batch of them is alive. */
            if (PyList_CheckExact(obj))
                PyObject_GC_UnTrack(obj);
            PyObject_GC_UnTrack(tup);
            int e = PyList_Append(out, tup);
            Py_DECREF(tup);
            if (e < 0)
                goto fail;
        }
        i += FRAME_HEADER + (Py_ssize_t)length;
    }
    PyObject *res = Py_BuildValue("(Nn)", out, i);
    out = NULL;
    PyBuffer_Release(&view);
    return res;
fail:
    Py_CLEAR(out);
done:
    PyBuffer_Release(&view);
    return out;
}

/* ------------------------------------------------------------------ summary updates (fold.py's twin) */

/* Whether dicts a and b hold the same key objects in the same order (values not looked at). Only
 * pointers are compared, so no Python code runs; equal keys that are distinct objects say "no". */
static int same_keys(PyObject *a, PyObject *b)
{
    if (!PyDict_CheckExact(a) || !PyDict_CheckExact(b) || PyDict_GET_SIZE(a) != PyDict_GET_SIZE(b))
        return 0;
    Py_ssize_t pa = 0, pb = 0;
    PyObject *ka, *kb, *v;
    while (PyDict_Next(a, &pa, &ka, &v)) {
        if (!PyDict_Next(b, &pb, &kb, &v) || ka != kb)
            return 0;
    }
    return 1;
}

/* summary.update(row), as dict.update does it for any row. */
static int update_one(PyObject *summary, PyObject *row)
{
    if (PyDict_Check(row))
        return PyDict_Update(summary, row);
    PyObject *r = PyObject_CallMethod(summary, "update", "O", row);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* update_rows(summary, rows) -> None
 * The same summary as `for row in rows: summary.update(row)`, key order included: a row is
 * skipped when the next row holds the same key objects in the same order (the next row's update
 * then sets every key the skipped one would have, in the same order, to its own value). */
static PyObject *update_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_CheckExact(args[0]) || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "update_rows(summary: dict, rows: list)");
        return NULL;
    }
    PyObject *summary = args[0], *rows = args[1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) { /* the size is read again: an update may run code */
        PyObject *row = Py_NewRef(PyList_GET_ITEM(rows, i));
        if (i + 1 < PyList_GET_SIZE(rows) && same_keys(row, PyList_GET_ITEM(rows, i + 1))) {
            Py_DECREF(row);
            continue;
        }
        int e = update_one(summary, row);
        Py_DECREF(row);
        if (e < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ the plain-row fold (fold.py's twin) */

static PyObject *s_step, *s_timestamp, *s_runtime, *s_empty; /* "_step" "_timestamp" "_runtime" "" */

/* fold_scalars(records, i, step, last, start, offset_rt, summary, rows, kind)
 *     -> (i, step, last, count)
 * Fold.fold_records' plain LOG_SCALARS case, record after record from index i, for a fold with no
 * pending row and no metric definitions: each record that is (offset, kind, [ts, dict, s, c]),
 * ts a float, last (the fold's last_ts) a float, with s None and c None, or c True and s None or
 * an int >= step, becomes a row exactly as fold.py makes it (s taken as the step; _step and ""
 * dropped; _timestamp = ts unless logged; _step; _runtime from start/offset_rt), the summary is
 * updated with it and it is appended to rows. Stops at the first record that is anything else
 * (or whose values fall outside these types) and returns its index: the Python fold takes it. */
static PyObject *fold_scalars(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "fold_scalars(records, i, step, last, start, offset_rt, summary, rows, kind)");
        return NULL;
    }
    PyObject *records = args[0], *step_o = args[2], *last_o = args[3], *start_o = args[4];
    PyObject *offset_o = args[5], *summary = args[6], *rows = args[7];
    if (!PyList_CheckExact(records) || !PyDict_CheckExact(summary) || !PyList_CheckExact(rows)) {
        PyErr_SetString(PyExc_TypeError, "fold_scalars: records and rows must be lists, summary a dict");
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    long kind = PyLong_AsLong(args[8]);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t count = 0, n = PyList_GET_SIZE(records);
    int overflow = 0;
    long long step = PyLong_CheckExact(step_o) ? PyLong_AsLongLongAndOverflow(step_o, &overflow) : 0;
    if (PyErr_Occurred())
        return NULL;
    /* Outside the types this twin handles: nothing folded, the Python fold does it all. */
    int usable = PyLong_CheckExact(step_o) && !overflow && PyFloat_CheckExact(last_o) &&
                 (start_o == Py_None || PyFloat_CheckExact(start_o)) && PyFloat_CheckExact(offset_o);
    double last = usable ? PyFloat_AS_DOUBLE(last_o) : 0.0;
    double start = usable && start_o != Py_None ? PyFloat_AS_DOUBLE(start_o) : 0.0;
    double offset_rt = usable ? PyFloat_AS_DOUBLE(offset_o) : 0.0;
    PyObject *last_obj = Py_NewRef(last_o);
    PyObject *held = NULL; /* the last row, its summary update not made yet */
    for (; usable && i >= 0 && i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i);
        if (!PyTuple_CheckExact(rec) || PyTuple_GET_SIZE(rec) != 3)
            break;
        PyObject *k = PyTuple_GET_ITEM(rec, 1), *p = PyTuple_GET_ITEM(rec, 2);
        if (!PyLong_CheckExact(k) || !PyList_CheckExact(p) || PyList_GET_SIZE(p) != 4)
            break;
        long kv = PyLong_AsLong(k);
        if (kv == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            break;
        }
        if (kv != kind)
            break;
        PyObject *ts = PyList_GET_ITEM(p, 0), *data = PyList_GET_ITEM(p, 1);
        PyObject *s = PyList_GET_ITEM(p, 2), *c = PyList_GET_ITEM(p, 3);
        if (!PyFloat_CheckExact(ts) || !PyDict_CheckExact(data))
            break;
        long long at = step;
        if (c == Py_None && s == Py_None) {
        } else if (c == Py_True && s == Py_None) {
        } else if (c == Py_True && PyLong_CheckExact(s)) {
            int ov = 0;
            at = PyLong_AsLongLongAndOverflow(s, &ov);
            if (ov || (at == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                break;
            }
            if (at < step)
                break;
        } else {
            break;
        }
        if (at == LLONG_MAX)
            break; /* the next step would not fit */
        double t = PyFloat_AS_DOUBLE(ts);
        /* every fallible step before the row is changed */
        PyObject *step_val = s != Py_None ? Py_NewRef(s) : PyLong_FromLongLong(at); /* fold.py: step = p[2] */
        double rt = 0.0;
        if (start_o != Py_None) {
            double run_for = t - start;
            rt = offset_rt + (run_for > 0.0 ? run_for : 0.0);
        }
        PyObject *rt_val = PyFloat_FromDouble(rt);
        if (step_val == NULL || rt_val == NULL) {
            Py_XDECREF(step_val);
            Py_XDECREF(rt_val);
            goto fail;
        }
        if (t > last) {
            last = t;
            Py_SETREF(last_obj, Py_NewRef(ts));
        }
        int e = 0;
        if ((e = PyDict_Contains(data, s_step)) == 1)
            e = PyDict_DelItem(data, s_step);
        if (e >= 0 && (e = PyDict_Contains(data, s_empty)) == 1)
            e = PyDict_DelItem(data, s_empty);
        if (e >= 0 && (e = PyDict_Contains(data, s_timestamp)) == 0)
            e = PyDict_SetItem(data, s_timestamp, ts);
        if (e >= 0)
            e = PyDict_SetItem(data, s_step, step_val);
        if (e >= 0)
            e = PyDict_SetItem(data, s_runtime, rt_val);
        Py_DECREF(step_val);
        Py_DECREF(rt_val);
        if (e < 0 || PyList_Append(rows, data) < 0)
            goto fail;
        /* summary.update(data), one row late: a row with the same keys as the next is left out
         * (update_rows' rule: the same summary, key order included) */
        if (held != NULL && !same_keys(held, data) && PyDict_Update(summary, held) < 0)
            goto fail;
        Py_XSETREF(held, Py_NewRef(data));
        step = at + 1;
        count++;
    }
    if (held != NULL) {
        int e = PyDict_Update(summary, held);
        Py_CLEAR(held);
        if (e < 0)
            goto fail;
    }
    if (count == 0) /* nothing folded: the caller's step as it was (it may not fit 64 bits) */
        return Py_BuildValue("(nONn)", i, step_o, last_obj, count);
    return Py_BuildValue("(nLNn)", i, step, last_obj, count);
fail:
    Py_XDECREF(held);
    Py_DECREF(last_obj);
    return NULL;
}

static PyObject *py_crc32(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long seed = 0;
    if (!PyArg_ParseTuple(args, "y*|k", &view, &seed))
        return NULL;
    uint32_t c = crc32_of((uint32_t)seed, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef methods[] = {
    {"frame_log", (PyCFunction)(void (*)(void))frame_log, METH_FASTCALL, "Frame a scalar log record."},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, "Verified records of a window."},
    {"fold_scalars", (PyCFunction)(void (*)(void))fold_scalars, METH_FASTCALL, "Fold plain scalar log records."},
    {"update_rows", (PyCFunction)(void (*)(void))update_rows, METH_FASTCALL, "Update a summary with rows."},
    {"crc32", py_crc32, METH_VARARGS, "zlib.crc32's value."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wandblite._speedups", "Optional C accelerators (see the file's comment).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    crc_init();
    s_step = PyUnicode_InternFromString("_step");
    s_timestamp = PyUnicode_InternFromString("_timestamp");
    s_runtime = PyUnicode_InternFromString("_runtime");
    s_empty = PyUnicode_InternFromString("");
    if (s_step == NULL || s_timestamp == NULL || s_runtime == NULL || s_empty == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_RECORD_SIZE", MAX_RECORD) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
