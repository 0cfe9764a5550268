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
#define POS_SLOTS 256
static unsigned short pos_slot[POS_SLOTS];

/* pos: 0 for a value (never cached), else 1 + the key's position in its map. */
/* memcmp(a, b, n) == 0, without a call for the short keys most rows hold */
static inline int same_bytes(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (n > 16)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static inline int slot_holds(const KeySlot *slot, const unsigned char *s, Py_ssize_t n)
{
    return slot->str != NULL && slot->len == n && same_bytes(slot->raw, s, (size_t)n);
}

static PyObject *decode_str(const unsigned char *s, Py_ssize_t n, Py_ssize_t pos)
{
    if (pos == 0 || n > KEY_MAX)
        return PyUnicode_DecodeUTF8((const char *)s, n, "replace");
    if (pos <= POS_SLOTS && slot_holds(&key_cache[pos_slot[pos - 1]], s, n))
        return Py_NewRef(key_cache[pos_slot[pos - 1]].str);
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    h ^= h >> 16; /* FNV-1a's low bits barely differ between "w4_m0" and "w6_m0": mixed (murmur3's fmix32) */
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    /* four slots a key may live in, so that keys of one row sharing a slot do not evict each
     * other on every row: the one holding it, else an empty one, else the next in turn */
    static unsigned short turn;
    unsigned short set = (unsigned short)(h & (KEY_SLOTS - 4)), idx = KEY_SLOTS;
    for (unsigned short w = 0; w < 4 && idx == KEY_SLOTS; w++)
        if (slot_holds(&key_cache[set + w], s, n))
            idx = (unsigned short)(set + w);
    for (unsigned short w = 0; w < 4 && idx == KEY_SLOTS; w++)
        if (key_cache[set + w].str == NULL)
            idx = (unsigned short)(set + w);
    if (idx == KEY_SLOTS)
        idx = (unsigned short)(set + (turn++ & 3));
    if (pos <= POS_SLOTS)
        pos_slot[pos - 1] = idx;
    KeySlot *slot = &key_cache[idx];
    if (slot_holds(slot, s, n))
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

/* A msgpack map header at r->p: its entry count into *n, r->p past it. 0 when there is none, or when
 * the count cannot fit in what is left (each entry takes at least two bytes: never trust a count). */
static inline int map_header(Rd *r, Py_ssize_t *n)
{
    if (r->p >= r->end)
        return 0;
    unsigned char t = *r->p++;
    if ((t & 0xf0) == 0x80) {
        *n = t & 0x0f;
    } else if (t == 0xde && r->end - r->p >= 2) {
        *n = be16(r->p);
        r->p += 2;
    } else if (t == 0xdf && r->end - r->p >= 4) {
        *n = (Py_ssize_t)be32(r->p);
        r->p += 4;
    } else {
        return 0;
    }
    return *n <= r->end - r->p;
}

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
    Py_ssize_t n;
    if (!map_header(&r, &n))
        goto fail;
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

/* ------------------------------------------------------------------ a shared run's aligned rows (replay's twin) */

/* Step over one scalar read_scalar would decode; 0 when it is anything else or cut short. */
static int skip_scalar(Rd *r)
{
    if (r->p >= r->end)
        return 0;
    unsigned char t = *r->p++;
    size_t n;
    if (t <= 0x7f || t >= 0xe0)
        return 1;
    if ((t & 0xe0) == 0xa0) {
        n = t & 0x1f;
    } else {
        switch (t) {
        case 0xc0: case 0xc2: case 0xc3:
            return 1;
        case 0xcc: case 0xd0:
            n = 1;
            break;
        case 0xcd: case 0xd1:
            n = 2;
            break;
        case 0xca: case 0xce: case 0xd2:
            n = 4;
            break;
        case 0xcb: case 0xcf: case 0xd3:
            n = 8;
            break;
        case 0xd9:
            if (r->end - r->p < 1)
                return 0;
            n = r->p[0];
            r->p += 1;
            break;
        case 0xda:
            if (r->end - r->p < 2)
                return 0;
            n = be16(r->p);
            r->p += 2;
            break;
        case 0xdb:
            if (r->end - r->p < 4)
                return 0;
            n = be32(r->p);
            r->p += 4;
            break;
        default:
            return 0;
        }
    }
    if ((size_t)(r->end - r->p) < n)
        return 0;
    r->p += n;
    return 1;
}

/* An int that fits a long long (what `type(x) is int` is for a decoded value, bools excluded). */
static int read_ll(Rd *r, long long *out)
{
    if (r->p >= r->end)
        return 0;
    unsigned char t = *r->p;
    size_t need = t == 0xcc || t == 0xd0 ? 1 : t == 0xcd || t == 0xd1 ? 2 : t == 0xce || t == 0xd2 ? 4
                : t == 0xcf || t == 0xd3 ? 8 : 0;
    if ((size_t)(r->end - r->p - 1) < need)
        return 0;
    const unsigned char *q = r->p + 1;
    if (t <= 0x7f || t >= 0xe0)
        *out = t <= 0x7f ? t : (int8_t)t;
    else if (t == 0xcc) *out = q[0];
    else if (t == 0xcd) *out = be16(q);
    else if (t == 0xce) *out = be32(q);
    else if (t == 0xcf) {
        uint64_t u = be64(q);
        if (u > (uint64_t)LLONG_MAX)
            return 0;
        *out = (long long)u;
    }
    else if (t == 0xd0) *out = (int8_t)q[0];
    else if (t == 0xd1) *out = (int16_t)be16(q);
    else if (t == 0xd2) *out = (int32_t)be32(q);
    else if (t == 0xd3) *out = (int64_t)be64(q);
    else
        return 0;
    r->p += 1 + need;
    return 1;
}

/* One record of a writer, as the fused merge reads it. */
#define PLAIN_KEYS 64
typedef struct {
    const unsigned char *map, *end; /* the data map's first entry, the payload's end */
    Py_ssize_t nkeys;
    double ts;
    long long at; /* the row's step */
    const unsigned char *key[PLAIN_KEYS]; /* where each key's bytes (header included) start and end */
    const unsigned char *key_end[PLAIN_KEYS];
} Plain;

/* Whether payload p is a LOG_SCALARS record fold_scalars would fold for a fold at `step`, decoded
 * the way scan's decode_log would: [float ts, {str: scalar}, s, c] with (s, c) nil/nil, nil/true,
 * or an int >= step/true. 0: the Python fold takes it. */
static int parse_plain(const unsigned char *p, size_t len, long long step, Plain *out)
{
    Rd r = {p, p + len};
    if (len < 10 || *r.p++ != 0x94)
        return 0;
    if (*r.p == 0xcb) {
        uint64_t u = be64(r.p + 1);
        memcpy(&out->ts, &u, 8);
        r.p += 9;
    } else if (*r.p == 0xca) {
        uint32_t u = be32(r.p + 1);
        float f;
        memcpy(&f, &u, 4);
        out->ts = (double)f;
        r.p += 5;
    } else {
        return 0;
    }
    Py_ssize_t n;
    if (!map_header(&r, &n))
        return 0;
    out->map = r.p;
    out->end = r.end;
    out->nkeys = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (r.p >= r.end || !((*r.p & 0xe0) == 0xa0 || *r.p == 0xd9 || *r.p == 0xda || *r.p == 0xdb))
            return 0;
        const unsigned char *k = r.p;
        if (!skip_scalar(&r))
            return 0;
        if (i < PLAIN_KEYS) {
            out->key[i] = k;
            out->key_end[i] = r.p;
        }
        if (!skip_scalar(&r))
            return 0;
    }
    long long s = 0;
    int nil_step = r.p < r.end && *r.p == 0xc0;
    if (nil_step)
        r.p++;
    else if (!read_ll(&r, &s))
        return 0;
    if (r.p >= r.end)
        return 0;
    unsigned char c = *r.p++;
    if (r.p != r.end)
        return 0;
    if (c == 0xc0 && !nil_step)
        return 0; /* a step without commit=True: not the plain case */
    if (c != 0xc0 && c != 0xc3)
        return 0;
    if (!nil_step && s < step)
        return 0;
    out->at = nil_step ? step : s;
    return out->at != LLONG_MAX; /* the next step must fit */
}

/* Whether two checked maps hold the same key bytes in the same order ("no" past PLAIN_KEYS keys). */
static int same_raw_keys(const Plain *a, const Plain *b)
{
    if (a->nkeys != b->nkeys || a->nkeys > PLAIN_KEYS)
        return 0;
    for (Py_ssize_t i = 0; i < a->nkeys; i++) {
        size_t n = (size_t)(a->key_end[i] - a->key[i]);
        if ((size_t)(b->key_end[i] - b->key[i]) != n || !same_bytes(a->key[i], b->key[i], n))
            return 0;
    }
    return 1;
}

static inline int is_key(PyObject *k, Py_ssize_t n, const char *name)
{
    return PyUnicode_GET_LENGTH(k) == n && PyUnicode_CompareWithASCIIString(k, name) == 0;
}

static double runtime_of(double ts, int has_start, double start, double offset_rt)
{
    if (!has_start)
        return 0.0;
    double run_for = ts - start;
    return offset_rt + (run_for > 0.0 ? run_for : 0.0);
}

/* One writer of merge_scalars. */
typedef struct {
    PyObject *records;
    Py_ssize_t i;
    long long step;
    double last, start, offset_rt;
    int has_start, moved;
    PyObject *summary;
    Plain buf[2];          /* cur and held_plain point into it, swapped rather than copied */
    Plain *cur;
    PyObject *held;        /* the payload of the last row taken, its summary update not made yet */
    Plain *held_plain;
    long long held_at;
    double held_rt;
} Writer;

/* The summary update fold_scalars makes for the held row: the row rebuilt from its payload. */
static int flush_held(Writer *w)
{
    if (w->held == NULL)
        return 0;
    PyObject *p = decode_log((const unsigned char *)PyBytes_AS_STRING(w->held), (size_t)PyBytes_GET_SIZE(w->held));
    Py_CLEAR(w->held);
    if (p == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "merge_scalars: a checked record did not decode");
        return -1;
    }
    PyObject *data = PyList_GET_ITEM(p, 1), *step = PyLong_FromLongLong(w->held_at);
    PyObject *rt = PyFloat_FromDouble(w->held_rt);
    int e = step == NULL || rt == NULL ? -1 : 0;
    if (e >= 0 && (e = PyDict_Contains(data, s_step)) == 1)
        e = PyDict_DelItem(data, s_step);
    if (e >= 0 && (e = PyDict_Contains(data, s_empty)) == 1)
        e = PyDict_DelItem(data, s_empty);
    if (e >= 0 && (e = PyDict_Contains(data, s_timestamp)) == 0)
        e = PyDict_SetItem(data, s_timestamp, PyList_GET_ITEM(p, 0));
    if (e >= 0)
        e = PyDict_SetItem(data, s_step, step);
    if (e >= 0)
        e = PyDict_SetItem(data, s_runtime, rt);
    if (e >= 0)
        e = PyDict_Update(w->summary, data);
    Py_XDECREF(step);
    Py_XDECREF(rt);
    Py_DECREF(p);
    return e < 0 ? -1 : 0;
}

/* The keys a row was given, in the order they went in: rows of one shape give the same list. */
typedef struct {
    PyObject **key; /* borrowed: the row holds them */
    Py_ssize_t n, cap;
} Shape;

/* row[k] = v, noting k in shape when it is a new key of row. */
static int set_noting(PyObject *row, PyObject *k, PyObject *v, Shape *shape)
{
    Py_ssize_t before = PyDict_GET_SIZE(row);
    if (PyDict_SetItem(row, k, v) < 0)
        return -1;
    if (PyDict_GET_SIZE(row) == before)
        return 0;
    if (shape->n == shape->cap) {
        Py_ssize_t cap = shape->cap ? 2 * shape->cap : 128;
        PyObject **key = PyMem_Realloc(shape->key, (size_t)cap * sizeof(PyObject *));
        if (key == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        shape->key = key;
        shape->cap = cap;
    }
    shape->key[shape->n++] = k;
    return 0;
}

/* merge_scalars(writers, kind, rows) -> (count, why, who, same)
 * A shared run's replay when its writers log in step: writers[w] = [records, i, step, last, start,
 * offset_rt, summary], the lowest-ranked writer first, each the state of one writer's Fold (its
 * batch of records as scan gives them with payload bytes, the index of its next record, step,
 * last_ts, the start and runtime offset of its attempt, its summary) for a fold fold_scalars
 * would take (no pending row, no metric definitions). While every writer's next record is a
 * LOG_SCALARS record fold_scalars would fold and all of them make a row of one step, the merged
 * row (merge.merge_windows: the writers' rows as each fold makes them, combined lowest-ranked
 * first, each later writer's keys updated in) is decoded from their payloads straight into one
 * dict, appended to rows, and each writer's state moves on as its fold would (i, step, last are
 * written back; the summary is updated as fold_scalars does); its rows and events counters go up
 * by count. why: 1 a writer's batch ended, 2 its next record is not such a record, 3 the writers'
 * steps differ, 4 its state is not of the types taken here; who: that writer's index. same: the
 * rows made hold the same key objects in the same order (then updating a summary with the last
 * one is updating it with each in turn). */
static PyObject *merge_scalars(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "merge_scalars(writers: list, kind: int, rows: list)");
        return NULL;
    }
    PyObject *states = args[0], *rows = args[2];
    long kind = PyLong_AsLong(args[1]);
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t nw = PyList_GET_SIZE(states), count = 0, who = 0;
    int why = 0, same = 1;
    Shape shapes[2] = {{NULL, 0, 0}, {NULL, 0, 0}}, *shape = &shapes[0], *prev_shape = &shapes[1];
    if (nw == 0) {
        PyErr_SetString(PyExc_ValueError, "merge_scalars: no writers");
        return NULL;
    }
    Writer *ws = PyMem_Calloc((size_t)nw, sizeof(Writer));
    if (ws == NULL)
        return PyErr_NoMemory();
    PyObject *keep = PyList_GetSlice(states, 0, nw); /* the states stay alive, whatever runs below */
    if (keep == NULL)
        goto fail;
    for (Py_ssize_t w = 0; w < nw; w++) {
        PyObject *st = PyList_GET_ITEM(keep, w);
        Writer *x = &ws[w];
        int ok = PyList_CheckExact(st) && PyList_GET_SIZE(st) == 7;
        if (ok) {
            PyObject *start = PyList_GET_ITEM(st, 4);
            int of = 0;
            ok = PyList_CheckExact(PyList_GET_ITEM(st, 0)) && PyLong_CheckExact(PyList_GET_ITEM(st, 1)) &&
                 PyLong_CheckExact(PyList_GET_ITEM(st, 2)) && PyFloat_CheckExact(PyList_GET_ITEM(st, 3)) &&
                 (start == Py_None || PyFloat_CheckExact(start)) && PyFloat_CheckExact(PyList_GET_ITEM(st, 5)) &&
                 PyDict_CheckExact(PyList_GET_ITEM(st, 6));
            if (ok) {
                x->i = PyLong_AsSsize_t(PyList_GET_ITEM(st, 1));
                x->step = PyLong_AsLongLongAndOverflow(PyList_GET_ITEM(st, 2), &of);
                if (PyErr_Occurred()) {
                    PyErr_Clear();
                    ok = 0;
                }
                ok = ok && !of && x->i >= 0;
                x->last = PyFloat_AS_DOUBLE(PyList_GET_ITEM(st, 3));
                x->has_start = start != Py_None;
                x->start = x->has_start ? PyFloat_AS_DOUBLE(start) : 0.0;
                x->offset_rt = PyFloat_AS_DOUBLE(PyList_GET_ITEM(st, 5));
            }
        }
        if (!ok) {
            why = 4;
            who = w;
            goto done;
        }
        x->cur = &x->buf[0];
        x->held_plain = &x->buf[1];
        /* ours: the state list could be changed by code run below */
        x->records = Py_NewRef(PyList_GET_ITEM(st, 0));
        x->summary = Py_NewRef(PyList_GET_ITEM(st, 6));
    }
    Py_ssize_t size = 0; /* the previous merged row's size: the next one is made that big at once */
    for (;;) {
        /* every writer's next record: checked, and all of one step */
        for (Py_ssize_t w = 0; w < nw && !why; w++) {
            Writer *x = &ws[w];
            if (x->i >= PyList_GET_SIZE(x->records)) {
                why = 1;
                who = w;
                break;
            }
            PyObject *rec = PyList_GET_ITEM(x->records, x->i);
            PyObject *k, *pl;
            if (!PyTuple_CheckExact(rec) || PyTuple_GET_SIZE(rec) != 3 || !PyLong_CheckExact(k = PyTuple_GET_ITEM(rec, 1)) ||
                PyLong_AsLong(k) != kind || !PyBytes_CheckExact(pl = PyTuple_GET_ITEM(rec, 2)) ||
                !parse_plain((const unsigned char *)PyBytes_AS_STRING(pl), (size_t)PyBytes_GET_SIZE(pl), x->step, x->cur)) {
                PyErr_Clear(); /* a kind that does not fit a long: simply not ours */
                why = 2;
                who = w;
                break;
            }
            if (x->cur->at != ws[0].cur->at) {
                why = 3;
                who = w;
            }
        }
        if (why)
            break;
        /* the merged row, lowest-ranked writer first; _step, _timestamp and _runtime end as the
         * highest-ranked writer's, where the lowest-ranked writer's row put them */
        Writer *top = &ws[nw - 1];
        PyObject *step_o = PyLong_FromLongLong(top->cur->at);
        PyObject *rt_o = PyFloat_FromDouble(runtime_of(top->cur->ts, top->has_start, top->start, top->offset_rt));
        PyObject *ts_o = PyFloat_FromDouble(top->cur->ts);
#if PY_VERSION_HEX < 0x030D0000
        PyObject *row = _PyDict_NewPresized(size);
#else
        PyObject *row = PyDict_New();
#endif
        int e = step_o == NULL || rt_o == NULL || ts_o == NULL || row == NULL ? -1 : 0;
        Py_ssize_t pos = 0;
        shape->n = 0;
        /* _timestamp, _step and _runtime hold their final objects once the lowest-ranked writer
         * set them, until a writer's own "_timestamp" or "_runtime" changes one: a later writer
         * sets them again only then (setting a key to the object it holds changes nothing) */
        int meta_final = 0;
        for (Py_ssize_t w = 0; w < nw && e >= 0; w++) {
            Writer *x = &ws[w];
            Rd r = {x->cur->map, x->cur->end}; /* checked by parse_plain: every read below succeeds */
            int has_ts = 0;
            for (Py_ssize_t j = 0; j < x->cur->nkeys && e >= 0; j++) {
                /* a fixstr key is told by its bytes; another header by the decoded key */
                unsigned char h = *r.p;
                int fix = (h & 0xe0) == 0xa0, len = h & 0x1f;
                int drop = fix ? len == 0 || (len == 5 && memcmp(r.p + 1, "_step", 5) == 0) : -1;
                int ts_key = fix ? len == 10 && memcmp(r.p + 1, "_timestamp", 10) == 0 : -1;
                PyObject *key = read_scalar(&r, ++pos);
                PyObject *v = key == NULL ? NULL : read_scalar(&r, 0);
                if (v == NULL) {
                    Py_XDECREF(key);
                    e = -1;
                    break;
                }
                if (drop < 0) {
                    drop = PyUnicode_GET_LENGTH(key) == 0 || is_key(key, 5, "_step");
                    ts_key = is_key(key, 10, "_timestamp");
                }
                if (!drop) { /* the fold deletes "_step" and "" from the writer's row */
                    has_ts = has_ts || ts_key;
                    if (ts_key || is_key(key, 8, "_runtime"))
                        meta_final = 0;
                    e = set_noting(row, key, v, shape);
                }
                Py_DECREF(key);
                Py_DECREF(v);
            }
            if (meta_final)
                continue;
            if (e >= 0 && !has_ts)
                e = set_noting(row, s_timestamp, ts_o, shape);
            if (e >= 0)
                e = set_noting(row, s_step, step_o, shape);
            if (e >= 0)
                e = set_noting(row, s_runtime, rt_o, shape);
            meta_final = !has_ts;
        }
        Py_XDECREF(step_o);
        Py_XDECREF(rt_o);
        Py_XDECREF(ts_o);
        if (e >= 0)
            e = PyList_Append(rows, row);
        Py_XDECREF(row);
        if (e < 0)
            goto fail;
        size = PyDict_GET_SIZE(row);
        if (count > 0 && same)
            same = shape->n == prev_shape->n && memcmp(shape->key, prev_shape->key, (size_t)shape->n * sizeof(PyObject *)) == 0;
        Shape *t = prev_shape;
        prev_shape = shape;
        shape = t;
        /* each writer's fold moves on; its summary takes the row one row late, as fold_scalars does */
        for (Py_ssize_t w = 0; w < nw; w++) {
            Writer *x = &ws[w];
            if (x->held != NULL && !same_raw_keys(x->held_plain, x->cur) && flush_held(x) < 0)
                goto fail;
            Py_XSETREF(x->held, Py_NewRef(PyTuple_GET_ITEM(PyList_GET_ITEM(x->records, x->i), 2)));
            Plain *taken = x->cur;
            x->cur = x->held_plain; /* free for the next record */
            x->held_plain = taken;
            x->held_at = taken->at;
            x->held_rt = runtime_of(taken->ts, x->has_start, x->start, x->offset_rt);
            if (taken->ts > x->last) {
                x->last = taken->ts;
                x->moved = 1;
            }
            x->step = taken->at + 1;
            x->i++;
        }
        count++;
    }
done:
    for (Py_ssize_t w = 0; w < nw; w++) {
        Writer *x = &ws[w];
        if (x->records == NULL)
            break; /* not taken (why 4): nor are the ones after it */
        if (flush_held(x) < 0)
            goto fail;
        PyObject *st = PyList_GET_ITEM(keep, w), *i = PyLong_FromSsize_t(x->i), *step = PyLong_FromLongLong(x->step);
        PyObject *last = x->moved ? PyFloat_FromDouble(x->last) : Py_NewRef(PyList_GET_ITEM(st, 3));
        if (i == NULL || step == NULL || last == NULL) {
            Py_XDECREF(i);
            Py_XDECREF(step);
            Py_XDECREF(last);
            goto fail;
        }
        PyList_SetItem(st, 1, i); /* steals; the list is the caller's own (checked exact, size 7) */
        PyList_SetItem(st, 2, step);
        PyList_SetItem(st, 3, last);
    }
    for (Py_ssize_t w = 0; w < nw; w++) {
        Py_XDECREF(ws[w].records);
        Py_XDECREF(ws[w].summary);
    }
    PyMem_Free(ws);
    Py_DECREF(keep);
    PyMem_Free(shapes[0].key);
    PyMem_Free(shapes[1].key);
    return Py_BuildValue("(ninN)", count, why, who, PyBool_FromLong(same));
fail:
    PyMem_Free(shapes[0].key);
    PyMem_Free(shapes[1].key);
    for (Py_ssize_t w = 0; w < nw; w++) {
        Py_XDECREF(ws[w].records);
        Py_XDECREF(ws[w].summary);
        Py_XDECREF(ws[w].held);
    }
    PyMem_Free(ws);
    Py_XDECREF(keep);
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
    {"merge_scalars", (PyCFunction)(void (*)(void))merge_scalars, METH_FASTCALL, "Merge writers' aligned rows."},
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
