/* otel_threads.otlp._speedups: the span attribute loop of the OTLP decode step, in C.
 *
 * Turns a span's attribute list (serialized protobuf KeyValues, as upb hands
 * them to attributes) into the project's lossless JSON text and the
 * derived thread/turn columns: byte for byte what the pure-Python path
 * (attributes / wire.key_values + values.encode_json and
 * span_marks) gives. See values.py for the encoding.
 *
 * It decides nothing on its own: whatever it does not handle exactly (a
 * malformed or unusual encoding, a repeated key, invalid UTF-8, a non-bytes
 * item, ...) makes it give the list back to the Python path ("fall back"), which
 * then produces the text, or raises, as it always did. So it only accepts
 * canonical protobuf it reads exactly as upb does:
 *
 * - KeyValue: fields 1 (key) and 2 (value), length-delimited, each at most once,
 *   in any order; anything else falls back.
 * - AnyValue: exactly one field of the oneof with its own wire type (1 string,
 *   2 bool, 3 int64, 4 double, 5 array, 6 kvlist, 7 bytes); anything else (two
 *   fields, unknown fields, another wire type) falls back.
 * - ArrayValue / KeyValueList: only field 1, length-delimited.
 * - Tags are single bytes; varints are minimal and at most 10 bytes; every
 *   length is checked against the bytes that are left before anything is read.
 * - Strings (keys and string values) must be valid UTF-8 (strict: no overlong
 *   forms, no surrogates, nothing past U+10FFFF), else fall back.
 *
 * Nesting: values deeper than values.MAX_DEPTH arrays/kvlists become
 * {"$truncated":"depth"} without being parsed, as in the Python path, so the
 * recursion is at most MAX_DEPTH + 1 levels deep (MAX_DEPTH is read at import
 * and refused above HARD_MAX_DEPTH).
 *
 * Functions:
 *   attributes(raw_kvs) -> (bytes, derived) or None (fall back)
 *   attribute_column(attribute_lists, fallback) -> ([bytes|str], [derived])
 *       fallback(raw_kvs) -> (text, derived) is called for each list not handled.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define OK 0
#define FALLBACK 1
#define ERROR (-1)

#define HARD_MAX_DEPTH 200
#define STACK_ENTRIES 16
#define MAX_DERIVED_KEYS 32

/* --- configuration read from otel_threads.otlp.values at import ------------ */

static int max_depth = 64;
static PyObject *no_derived = NULL; /* values.NO_MARKS */
static PyObject *thread_id_value = NULL; /* values.thread_id_value */
static PyObject *derived_key_objects = NULL; /* keeps the key strings (and their UTF-8) alive */

typedef struct {
    const char *s;
    Py_ssize_t n;
} Key;

/* derived keys in this order: THREAD_ID_KEYS, IS_TURN_KEYS, TURN_ID_KEY, PREVIOUS_TURN_ID_KEY */
static Key derived_keys[MAX_DERIVED_KEYS];
static int n_derived_keys = 0;
static int n_thread_keys = 0;
static int n_is_turn_keys = 0;

/* --- output buffer ------------------------------------------------------------ */

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int
buf_grow(Buf *b, Py_ssize_t extra)
{
    Py_ssize_t need, cap;
    char *p;
    if (extra > PY_SSIZE_T_MAX - b->len) {
        PyErr_NoMemory();
        return ERROR;
    }
    need = b->len + extra;
    cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return ERROR;
    }
    b->p = p;
    b->cap = cap;
    return OK;
}

static inline int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->cap - b->len >= extra)
        return OK;
    return buf_grow(b, extra);
}

static inline int
buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return ERROR;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return OK;
}

#define PUT_LITERAL(b, lit) buf_put((b), (lit), (Py_ssize_t)(sizeof(lit) - 1))

/* --- protobuf wire reading ----------------------------------------------------- */

typedef const unsigned char *cursor;

/* A minimal varint of at most 10 bytes (the 10th at most 1); FALLBACK otherwise. */
static inline int
read_varint(cursor *pp, cursor end, uint64_t *out)
{
    cursor p = *pp;
    uint64_t v = 0;
    int i;
    for (i = 0; i < 10; i++) {
        unsigned char c;
        if (p >= end)
            return FALLBACK;
        c = *p++;
        if (i == 9 && c > 1)
            return FALLBACK;
        v |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            if (c == 0 && i > 0)
                return FALLBACK; /* not minimal */
            *out = v;
            *pp = p;
            return OK;
        }
    }
    return FALLBACK;
}

/* The length of a length-delimited field: must fit in the bytes left. */
static inline int
read_length(cursor *pp, cursor end, Py_ssize_t *out)
{
    uint64_t v;
    if (read_varint(pp, end, &v) != OK)
        return FALLBACK;
    if (v > (uint64_t)(end - *pp))
        return FALLBACK;
    *out = (Py_ssize_t)v;
    return OK;
}

/* --- JSON strings ---------------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

/* 0: ASCII copied as is; 1: ASCII escaped by json; 2: the lead byte of a multi-byte
 * sequence (or an invalid byte), checked by utf8_sequence. */
static unsigned char byte_class[256];

/* Length (2-4) of the valid UTF-8 sequence at s (s[0] >= 0x80), or 0 if invalid. */
static inline int
utf8_sequence(cursor s, cursor end)
{
    unsigned char c = s[0];
    Py_ssize_t left = end - s;
    if (c >= 0xC2 && c <= 0xDF) {
        if (left >= 2 && (s[1] & 0xC0) == 0x80)
            return 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
        if (left >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80)
            return 3;
        return 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xF0)
            lo = 0x90; /* no overlong forms */
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
        if (left >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
            (s[3] & 0xC0) == 0x80)
            return 4;
        return 0;
    }
    return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether none of the 8 bytes at s is special (>= 0x80, < 0x20, '"' or '\\'). */
static inline int
plain8(cursor s)
{
    uint64_t x, quote, backslash;
    memcpy(&x, s, 8);
    quote = x ^ (ONES * '"');
    backslash = x ^ (ONES * '\\');
    return ((x | ((x - ONES * 0x20) & ~x) | ((quote - ONES) & ~quote) |
             ((backslash - ONES) & ~backslash)) &
            HIGHS) == 0;
}

/* The JSON string content of UTF-8 bytes, escaped exactly as json's
 * encode_basestring (ensure_ascii=False) does; FALLBACK if not valid UTF-8. */
static int
put_string_content(Buf *b, cursor s, Py_ssize_t n)
{
    cursor end = s + n;
    if (buf_reserve(b, n + 1) < 0) /* room for the bytes as they are and a quote */
        return ERROR;
    while (s < end) {
        cursor run = s;
        while (end - s >= 8 && plain8(s))
            s += 8;
        while (s < end) {
            unsigned char cls = byte_class[*s];
            if (cls == 0) {
                s++;
            }
            else if (cls == 2) {
                int k = utf8_sequence(s, end);
                if (k == 0)
                    return FALLBACK;
                s += k;
            }
            else {
                break;
            }
        }
        memcpy(b->p + b->len, run, (size_t)(s - run));
        b->len += s - run;
        if (s < end) { /* an ASCII byte json escapes */
            unsigned char c = *s++;
            char *o;
            if (buf_reserve(b, 6 + (end - s) + 1) < 0)
                return ERROR;
            o = b->p + b->len;
            o[0] = '\\';
            switch (c) {
            case '\\':
            case '"':
                o[1] = (char)c;
                b->len += 2;
                break;
            case '\b':
                o[1] = 'b';
                b->len += 2;
                break;
            case '\f':
                o[1] = 'f';
                b->len += 2;
                break;
            case '\n':
                o[1] = 'n';
                b->len += 2;
                break;
            case '\r':
                o[1] = 'r';
                b->len += 2;
                break;
            case '\t':
                o[1] = 't';
                b->len += 2;
                break;
            default:
                o[1] = 'u';
                o[2] = '0';
                o[3] = '0';
                o[4] = HEX[(c >> 4) & 0xf];
                o[5] = HEX[c & 0xf];
                b->len += 6;
            }
        }
    }
    return OK;
}

static int
put_string(Buf *b, cursor s, Py_ssize_t n)
{
    int r;
    if (buf_reserve(b, 1) < 0)
        return ERROR;
    b->p[b->len++] = '"';
    r = put_string_content(b, s, n);
    if (r != OK)
        return r;
    /* put_string_content leaves room for the closing quote */
    b->p[b->len++] = '"';
    return OK;
}

/* An object key: keys starting with "$" get one more "$". */
static int
put_key(Buf *b, cursor s, Py_ssize_t n)
{
    int r;
    if (buf_reserve(b, 2) < 0)
        return ERROR;
    b->p[b->len++] = '"';
    if (n > 0 && s[0] == '$')
        b->p[b->len++] = '$';
    r = put_string_content(b, s, n);
    if (r != OK)
        return r;
    if (buf_reserve(b, 2) < 0)
        return ERROR;
    b->p[b->len++] = '"';
    b->p[b->len++] = ':';
    return OK;
}

/* --- other values ---------------------------------------------------------------- */

static int
put_int64(Buf *b, uint64_t v)
{
    char tmp[24];
    int i = (int)sizeof(tmp);
    int negative = (int64_t)v < 0;
    uint64_t u = negative ? ~v + 1 : v;
    do {
        tmp[--i] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (negative)
        tmp[--i] = '-';
    return buf_put(b, tmp + i, (Py_ssize_t)sizeof(tmp) - i);
}

static int
put_double(Buf *b, uint64_t bits)
{
    double x;
    char *text;
    int r;
    memcpy(&x, &bits, sizeof(x));
    if (x != x)
        return PUT_LITERAL(b, "{\"$double\":\"NaN\"}");
    if (x - x != 0) /* infinite */
        return x > 0 ? PUT_LITERAL(b, "{\"$double\":\"Infinity\"}")
                     : PUT_LITERAL(b, "{\"$double\":\"-Infinity\"}");
    /* float.__repr__, which json uses for floats */
    text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL)
        return ERROR;
    r = buf_put(b, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return r;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
put_bytes(Buf *b, cursor s, Py_ssize_t n)
{
    Py_ssize_t groups = n / 3 + (n % 3 != 0);
    char *o;
    Py_ssize_t i = 0;
    if (groups > (PY_SSIZE_T_MAX - 16) / 4) {
        PyErr_NoMemory();
        return ERROR;
    }
    if (PUT_LITERAL(b, "{\"$bytes\":\"") < 0 || buf_reserve(b, 4 * groups + 2) < 0)
        return ERROR;
    o = b->p + b->len;
    for (; n - i >= 3; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        *o++ = B64[(v >> 18) & 63];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = B64[(v >> 18) & 63];
        *o++ = B64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    }
    else if (n - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        *o++ = B64[(v >> 18) & 63];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = '=';
    }
    *o++ = '"';
    *o++ = '}';
    b->len = o - b->p;
    return OK;
}

/* --- KeyValue lists ---------------------------------------------------------------- */

typedef struct {
    cursor key;
    Py_ssize_t key_len;
    cursor value; /* a serialized AnyValue; value_len 0: unset (null) */
    Py_ssize_t value_len;
} Entry;

/* A serialized KeyValue: fields 1 and 2, each at most once (key "" and null if unset). */
static int
parse_key_value(cursor p, Py_ssize_t n, Entry *e)
{
    cursor end = p + n;
    int have_key = 0, have_value = 0;
    e->key = p;
    e->key_len = 0;
    e->value = p;
    e->value_len = 0;
    while (p < end) {
        unsigned char tag = *p++;
        Py_ssize_t len;
        if (read_length(&p, end, &len) != OK)
            return FALLBACK;
        if (tag == 0x0a && !have_key) {
            have_key = 1;
            e->key = p;
            e->key_len = len;
        }
        else if (tag == 0x12 && !have_value) {
            have_value = 1;
            e->value = p;
            e->value_len = len;
        }
        else {
            return FALLBACK;
        }
        p += len;
    }
    return OK;
}

static inline int
same_key(const Entry *a, const Entry *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, (size_t)a->key_len) == 0;
}

/* OK if no key occurs twice, FALLBACK if one does (the Python path keeps the last
 * value, after reading every one), ERROR on no memory. */
static int
check_unique_keys(const Entry *e, Py_ssize_t n)
{
    Py_ssize_t i, j, size;
    uint32_t *slots;
    if (n < 2)
        return OK;
    if (n <= STACK_ENTRIES) {
        for (i = 1; i < n; i++)
            for (j = 0; j < i; j++)
                if (same_key(&e[i], &e[j]))
                    return FALLBACK;
        return OK;
    }
    if (n > (Py_ssize_t)(UINT32_MAX / 4))
        return FALLBACK;
    size = 64;
    while (size < 2 * n)
        size *= 2;
    slots = PyMem_Calloc((size_t)size, sizeof(uint32_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return ERROR;
    }
    for (i = 0; i < n; i++) {
        uint64_t h = 14695981039346656037ULL; /* FNV-1a */
        Py_ssize_t k;
        for (k = 0; k < e[i].key_len; k++)
            h = (h ^ e[i].key[k]) * 1099511628211ULL;
        for (k = (Py_ssize_t)(h & (uint64_t)(size - 1));; k = (k + 1) & (size - 1)) {
            if (slots[k] == 0) {
                slots[k] = (uint32_t)i + 1;
                break;
            }
            if (same_key(&e[slots[k] - 1], &e[i])) {
                PyMem_Free(slots);
                return FALLBACK;
            }
        }
    }
    PyMem_Free(slots);
    return OK;
}

static int put_any(Buf *b, cursor p, Py_ssize_t n, int level);

/* {"key":value,...} of parsed entries whose values are at `level`. */
static int
put_object(Buf *b, const Entry *e, Py_ssize_t n, int level)
{
    Py_ssize_t i;
    int r;
    if (buf_reserve(b, 1) < 0)
        return ERROR;
    b->p[b->len++] = '{';
    for (i = 0; i < n; i++) {
        if (i) {
            if (buf_reserve(b, 1) < 0)
                return ERROR;
            b->p[b->len++] = ',';
        }
        r = put_key(b, e[i].key, e[i].key_len);
        if (r != OK)
            return r;
        r = put_any(b, e[i].value, e[i].value_len, level);
        if (r != OK)
            return r;
    }
    if (buf_reserve(b, 1) < 0)
        return ERROR;
    b->p[b->len++] = '}';
    return OK;
}

/* A KeyValueList (repeated KeyValue values = 1) at `level` (its values: level + 1). */
static int
put_kvlist(Buf *b, cursor p, Py_ssize_t n, int level)
{
    cursor end = p + n, q = p;
    Py_ssize_t count = 0, i;
    Entry stack[STACK_ENTRIES] = {{NULL, 0, NULL, 0}}; /* (quiets -Wmaybe-uninitialized) */
    Entry *e = stack;
    int r;
    while (q < end) { /* count the entries, checking the framing */
        Py_ssize_t len;
        if (*q++ != 0x0a || read_length(&q, end, &len) != OK)
            return FALLBACK;
        q += len;
        count++;
    }
    if (count == 0)
        return PUT_LITERAL(b, "{}");
    if (count > STACK_ENTRIES) {
        e = PyMem_Malloc((size_t)count * sizeof(Entry));
        if (e == NULL) {
            PyErr_NoMemory();
            return ERROR;
        }
    }
    for (i = 0, q = p; i < count; i++) {
        Py_ssize_t len;
        q++; /* 0x0a, checked above */
        if (read_length(&q, end, &len) != OK || parse_key_value(q, len, &e[i]) != OK) {
            r = FALLBACK;
            goto done;
        }
        q += len;
    }
    r = check_unique_keys(e, count);
    if (r == OK)
        r = put_object(b, e, count, level + 1);
done:
    if (e != stack)
        PyMem_Free(e);
    return r;
}

/* An ArrayValue (repeated AnyValue values = 1) at `level` (its items: level + 1). */
static int
put_array(Buf *b, cursor p, Py_ssize_t n, int level)
{
    cursor end = p + n;
    int first = 1, r;
    if (buf_reserve(b, 1) < 0)
        return ERROR;
    b->p[b->len++] = '[';
    while (p < end) {
        Py_ssize_t len;
        if (*p++ != 0x0a || read_length(&p, end, &len) != OK)
            return FALLBACK;
        if (!first) {
            if (buf_reserve(b, 1) < 0)
                return ERROR;
            b->p[b->len++] = ',';
        }
        first = 0;
        r = put_any(b, p, len, level + 1);
        if (r != OK)
            return r;
        p += len;
    }
    if (buf_reserve(b, 1) < 0)
        return ERROR;
    b->p[b->len++] = ']';
    return OK;
}

/* A serialized AnyValue at nesting `level`: exactly one field of the oneof. */
static int
put_any(Buf *b, cursor p, Py_ssize_t n, int level)
{
    cursor end = p + n;
    unsigned char tag;
    Py_ssize_t len;
    uint64_t v;
    if (n == 0)
        return PUT_LITERAL(b, "null");
    if (level > max_depth)
        return PUT_LITERAL(b, "{\"$truncated\":\"depth\"}");
    tag = *p++;
    switch (tag) {
    case 0x0a: /* string_value */
        if (read_length(&p, end, &len) != OK || p + len != end)
            return FALLBACK;
        return put_string(b, p, len);
    case 0x10: /* bool_value */
        if (read_varint(&p, end, &v) != OK || p != end)
            return FALLBACK;
        return v ? PUT_LITERAL(b, "true") : PUT_LITERAL(b, "false");
    case 0x18: /* int_value */
        if (read_varint(&p, end, &v) != OK || p != end)
            return FALLBACK;
        return put_int64(b, v);
    case 0x21: /* double_value */
        if (end - p != 8)
            return FALLBACK;
        v = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
            (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
            (uint64_t)p[7] << 56;
        return put_double(b, v);
    case 0x2a: /* array_value */
        if (read_length(&p, end, &len) != OK || p + len != end)
            return FALLBACK;
        return put_array(b, p, len, level);
    case 0x32: /* kvlist_value */
        if (read_length(&p, end, &len) != OK || p + len != end)
            return FALLBACK;
        return put_kvlist(b, p, len, level);
    case 0x3a: /* bytes_value */
        if (read_length(&p, end, &len) != OK || p + len != end)
            return FALLBACK;
        return put_bytes(b, p, len);
    default:
        return FALLBACK;
    }
}

/* --- derived columns ---------------------------------------------------------------- */

/* The derived-key index of a key, or -1. */
static int
derived_index(const Entry *e)
{
    int k;
    for (k = 0; k < n_derived_keys; k++)
        if (derived_keys[k].n == e->key_len &&
            memcmp(derived_keys[k].s, e->key, (size_t)e->key_len) == 0)
            return k;
    return -1;
}

/* A non-empty string value as str (new reference), or None (new reference). */
static PyObject *
nonempty_string(const Entry *e)
{
    cursor p = e->value, end = e->value + e->value_len;
    Py_ssize_t len;
    if (e->value_len > 0 && *p++ == 0x0a && read_length(&p, end, &len) == OK && len > 0)
        return PyUnicode_DecodeUTF8((const char *)p, len, NULL); /* checked when encoded */
    Py_RETURN_NONE;
}

/* 1 true, 0 false, -1 not a bool value. */
static int
bool_value(const Entry *e)
{
    cursor p = e->value, end = e->value + e->value_len;
    uint64_t v;
    if (e->value_len > 0 && *p++ == 0x10 && read_varint(&p, end, &v) == OK)
        return v != 0;
    return -1;
}

/* (thread_id, turn_id, is_turn, previous_turn_id), as values.span_marks. */
static PyObject *
span_marks(const Entry *e, Py_ssize_t n)
{
    Py_ssize_t slots[MAX_DERIVED_KEYS];
    Py_ssize_t i;
    int k, any = 0;
    PyObject *thread_id = NULL, *turn_id = NULL, *is_turn = NULL, *previous = NULL;
    PyObject *result;
    for (k = 0; k < n_derived_keys; k++)
        slots[k] = -1;
    for (i = 0; i < n; i++) {
        k = derived_index(&e[i]);
        if (k >= 0) {
            slots[k] = i;
            any = 1;
        }
    }
    if (!any) {
        Py_INCREF(no_derived);
        return no_derived;
    }
    for (k = 0; k < n_thread_keys; k++) {
        if (slots[k] >= 0) {
            PyObject *value = nonempty_string(&e[slots[k]]);
            if (value == NULL)
                goto error;
            if (value != Py_None) {
                /* a JSON string literal ("\"abc\"", as MLflow writes) is decoded there */
                if (PyUnicode_READ_CHAR(value, 0) == '"') {
                    thread_id = PyObject_CallOneArg(thread_id_value, value);
                    Py_DECREF(value);
                    if (thread_id == NULL)
                        goto error;
                }
                else
                    thread_id = value;
                break;
            }
            Py_DECREF(value);
        }
    }
    for (k = n_thread_keys; k < n_thread_keys + n_is_turn_keys; k++) {
        if (slots[k] >= 0) {
            int flag = bool_value(&e[slots[k]]);
            if (flag >= 0) {
                is_turn = PyBool_FromLong(flag);
                break;
            }
        }
    }
    k = n_thread_keys + n_is_turn_keys;
    if (slots[k] >= 0 && (turn_id = nonempty_string(&e[slots[k]])) == NULL)
        goto error;
    if (slots[k + 1] >= 0 && (previous = nonempty_string(&e[slots[k + 1]])) == NULL)
        goto error;
    result = PyTuple_Pack(4, thread_id ? thread_id : Py_None, turn_id ? turn_id : Py_None,
                          is_turn ? is_turn : Py_None, previous ? previous : Py_None);
    Py_XDECREF(thread_id);
    Py_XDECREF(turn_id);
    Py_XDECREF(is_turn);
    Py_XDECREF(previous);
    return result;
error:
    Py_XDECREF(thread_id);
    Py_XDECREF(turn_id);
    Py_XDECREF(is_turn);
    Py_XDECREF(previous);
    return NULL;
}

/* --- one attribute list ------------------------------------------------------------- */

/* The JSON text (bytes) and derived tuple of one span's attribute list: OK (two new
 * references in *text and *derived), FALLBACK, or ERROR (an exception is set). */
static int
encode_list(Buf *b, PyObject *raw_kvs, PyObject **text, PyObject **derived)
{
    PyObject *seq;
    PyObject **items;
    Py_ssize_t n, i;
    Entry stack[STACK_ENTRIES];
    Entry *e = stack;
    int r;

    if (PyIter_Check(raw_kvs)) /* one pass only: left whole to the Python path */
        return FALLBACK;
    seq = PySequence_Fast(raw_kvs, "attributes must be a sequence");
    if (seq == NULL) { /* not ours to judge: the Python path raises what it raises */
        if (PyErr_ExceptionMatches(PyExc_MemoryError))
            return ERROR;
        PyErr_Clear();
        return FALLBACK;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    items = PySequence_Fast_ITEMS(seq);
    if (n > STACK_ENTRIES) {
        e = PyMem_Malloc((size_t)n * sizeof(Entry));
        if (e == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return ERROR;
        }
    }
    for (i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyBytes_CheckExact(item) ||
            parse_key_value((cursor)PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item), &e[i]) !=
                OK) {
            r = FALLBACK;
            goto done;
        }
    }
    r = check_unique_keys(e, n);
    if (r != OK)
        goto done;
    b->len = 0;
    r = put_object(b, e, n, 0);
    if (r != OK)
        goto done;
    *derived = span_marks(e, n);
    if (*derived == NULL) {
        r = ERROR;
        goto done;
    }
    *text = PyBytes_FromStringAndSize(b->p, b->len);
    if (*text == NULL) {
        Py_CLEAR(*derived);
        r = ERROR;
    }
done:
    /* the entries point into the items of seq: release them only now */
    if (e != stack)
        PyMem_Free(e);
    Py_DECREF(seq);
    return r;
}

static void
buf_free(Buf *b)
{
    PyMem_Free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static PyObject *
speedups_attributes(PyObject *module, PyObject *raw_kvs)
{
    Buf b = {NULL, 0, 0};
    PyObject *text = NULL, *derived = NULL, *result;
    int r = encode_list(&b, raw_kvs, &text, &derived);
    buf_free(&b);
    if (r == ERROR)
        return NULL;
    if (r == FALLBACK)
        Py_RETURN_NONE;
    result = PyTuple_Pack(2, text, derived);
    Py_DECREF(text);
    Py_DECREF(derived);
    return result;
}

/* The (text, derived) pair returned by the Python fallback, as two new references. */
static int
unpack_pair(PyObject *pair, PyObject **text, PyObject **derived)
{
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "fallback must return a (text, derived) tuple");
        return ERROR;
    }
    *text = PyTuple_GET_ITEM(pair, 0);
    *derived = PyTuple_GET_ITEM(pair, 1);
    Py_INCREF(*text);
    Py_INCREF(*derived);
    return OK;
}

static PyObject *
speedups_attribute_column(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *iterator, *fallback, *raw_kvs;
    PyObject *texts = NULL, *deriveds = NULL, *result = NULL;
    Buf b = {NULL, 0, 0};

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "attribute_column(attribute_lists, fallback)");
        return NULL;
    }
    fallback = args[1];
    iterator = PyObject_GetIter(args[0]);
    if (iterator == NULL)
        return NULL;
    texts = PyList_New(0);
    deriveds = PyList_New(0);
    if (texts == NULL || deriveds == NULL)
        goto error;
    while ((raw_kvs = PyIter_Next(iterator)) != NULL) {
        PyObject *text = NULL, *derived = NULL;
        int r = encode_list(&b, raw_kvs, &text, &derived);
        if (r == FALLBACK) {
            PyObject *pair = PyObject_CallOneArg(fallback, raw_kvs);
            r = pair == NULL ? ERROR : unpack_pair(pair, &text, &derived);
            Py_XDECREF(pair);
        }
        Py_DECREF(raw_kvs);
        if (r == OK) {
            if (PyList_Append(texts, text) < 0 || PyList_Append(deriveds, derived) < 0)
                r = ERROR;
            Py_DECREF(text);
            Py_DECREF(derived);
        }
        if (r != OK)
            goto error;
    }
    if (PyErr_Occurred())
        goto error;
    result = PyTuple_Pack(2, texts, deriveds);
error:
    buf_free(&b);
    Py_DECREF(iterator);
    Py_XDECREF(texts);
    Py_XDECREF(deriveds);
    return result;
}

/* --- module ---------------------------------------------------------------------------- */

static int
add_key(PyObject *key)
{
    Py_ssize_t n;
    const char *s;
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "derived keys must be str");
        return ERROR;
    }
    if (n_derived_keys >= MAX_DERIVED_KEYS) {
        PyErr_SetString(PyExc_ValueError, "too many derived keys");
        return ERROR;
    }
    s = PyUnicode_AsUTF8AndSize(key, &n);
    if (s == NULL || PyList_Append(derived_key_objects, key) < 0)
        return ERROR;
    derived_keys[n_derived_keys].s = s;
    derived_keys[n_derived_keys].n = n;
    n_derived_keys++;
    return OK;
}

static int
add_keys(PyObject *values, const char *name, int *count)
{
    PyObject *keys = PyObject_GetAttrString(values, name);
    Py_ssize_t i;
    int r = OK;
    if (keys == NULL)
        return ERROR;
    if (!PyTuple_Check(keys)) {
        PyErr_Format(PyExc_TypeError, "values.%s must be a tuple", name);
        r = ERROR;
    }
    for (i = 0; r == OK && i < PyTuple_GET_SIZE(keys); i++)
        r = add_key(PyTuple_GET_ITEM(keys, i));
    if (r == OK)
        *count = (int)PyTuple_GET_SIZE(keys);
    Py_DECREF(keys);
    return r;
}

static int
add_one_key(PyObject *values, const char *name)
{
    PyObject *key = PyObject_GetAttrString(values, name);
    int r;
    if (key == NULL)
        return ERROR;
    r = add_key(key);
    Py_DECREF(key);
    return r;
}

/* Reads the keys, MAX_DEPTH, NO_MARKS and thread_id_value of otel_threads.otlp.values. */
static int
configure(void)
{
    PyObject *values = PyImport_ImportModule("otel_threads.otlp.values");
    PyObject *depth = NULL;
    long d;
    int r = ERROR;
    if (values == NULL)
        return ERROR;
    derived_key_objects = PyList_New(0);
    if (derived_key_objects == NULL)
        goto done;
    n_derived_keys = 0;
    if (add_keys(values, "THREAD_ID_KEYS", &n_thread_keys) < 0 ||
        add_keys(values, "IS_TURN_KEYS", &n_is_turn_keys) < 0 ||
        add_one_key(values, "TURN_ID_KEY") < 0 || add_one_key(values, "PREVIOUS_TURN_ID_KEY") < 0)
        goto done;
    depth = PyObject_GetAttrString(values, "MAX_DEPTH");
    if (depth == NULL)
        goto done;
    d = PyLong_AsLong(depth);
    if (d == -1 && PyErr_Occurred())
        goto done;
    if (d < 0 || d > HARD_MAX_DEPTH) {
        PyErr_Format(PyExc_ImportError, "MAX_DEPTH %ld is past the C limit %d", d,
                     HARD_MAX_DEPTH);
        goto done;
    }
    max_depth = (int)d;
    no_derived = PyObject_GetAttrString(values, "NO_MARKS");
    if (no_derived == NULL)
        goto done;
    thread_id_value = PyObject_GetAttrString(values, "thread_id_value");
    if (thread_id_value == NULL)
        goto done;
    r = OK;
done:
    Py_XDECREF(depth);
    Py_DECREF(values);
    return r;
}

static PyMethodDef speedups_methods[] = {
    {"attributes", (PyCFunction)speedups_attributes, METH_O,
     "attributes(raw_kvs) -> (json_bytes, derived), or None when the Python path must "
     "decide."},
    {"attribute_column", (PyCFunction)(void (*)(void))speedups_attribute_column, METH_FASTCALL,
     "attribute_column(attribute_lists, fallback) -> (texts, derived): fallback(raw_kvs) "
     "gives the (text, derived) of each list not handled here."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "otel_threads.otlp._speedups",
    "The span attribute loop of the OTLP decode step in C (see attributes).",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    int c;
    for (c = 0; c < 256; c++)
        byte_class[c] = c >= 0x80 ? 2 : (c < 0x20 || c == '"' || c == '\\') ? 1 : 0;
    if (no_derived == NULL && configure() < 0) {
        Py_CLEAR(derived_key_objects);
        Py_CLEAR(no_derived);
        Py_CLEAR(thread_id_value);
        n_derived_keys = 0;
        return NULL;
    }
    return PyModule_Create(&speedups_module);
}
