/*
 * A libFuzzer harness for the response parser of gonogo.loadgen._engine (issue 11, item 5).
 *
 * The parser is static in _engine.c, so the file is included whole; the Engines are built by
 * the real constructor (Engine_init from Python objects: expect_parse, program_parse), so
 * every bound the parser relies on is set up as in a run. One input is:
 *
 *   byte 0   which configuration (see CONFIGS below)
 *   byte 1   bit 0: measured phase (failures kept as evidence) or warm-up; bits 1-7: which
 *            step of a program the first response answers (the next ones: the following steps)
 *   byte 2-3 seed of the split points
 *   rest     the bytes a server sends on one connection
 *
 * The bytes go to parse() in pieces of pseudo-random sizes (1 byte to all that is left), each
 * piece in a heap block of exactly its size, so reading one byte past it is an ASan report
 * (the engine's own read buffer is larger: there such a read would go unnoticed). Each
 * complete response is judged as complete() / prog_complete() judge it: x_judge, Set-Cookie,
 * the step's extractions, then every step's request is built from the extracted values
 * (percent and JSON encodings of hostile bytes); the kept failures are turned into Python
 * objects as results() does. Bytes after a response (pipelined, or a desync) and bytes after a
 * protocol error start a new response, as a new connection would; at the end of the input an
 * unfinished close-delimited body is completed (the server closed).
 *
 * Built by tests/fuzz/fuzz_build.py: with libFuzzer (`make fuzz`) or, with -DFUZZ_MAIN, as a plain
 * program that runs the files named on its command line (the pytest; no clang needed) and
 * prints one line per input saying what the parser made of it.
 */
#include "../../src/gonogo/loadgen/_engine.c"

#include <stdio.h>

/* Configurations: (keyword arguments of Engine as a Python expression). The program's steps:
 * 0 POST with json, header, regex and status extractions and cookies (expect: JSON fields);
 * 1 GET using every variable in its head (raw, percent) and body (JSON string);
 * 2 GET with a regex without a group, and a poll; 3 HEAD with a header extraction and cookies;
 * 4 GET with body_contains and a json extraction of an array element from the end.
 * Configuration 6 streams: its requests' bodies are scanned for events (server-sent events,
 * chunks, lines); the transcript gives each response's events and body bytes. */
static const char *const CONFIGS[] = {
    /* 0: no expectations */
    "dict(requests=[b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'], weights=[1])",
    /* 1: a HEAD request: no body, whatever the headers say */
    "dict(requests=[b'HEAD / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'], weights=[1],"
    " expects=[([200, 204], [(b'Content-Type', b'json'), (b'ETag', b'')], None, [], 0)])",
    /* 2: status, headers, body_contains and JSON fields, a small max_body */
    "dict(requests=[b'GET /a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'], weights=[1],"
    " expects=[([200, 201], [(b'content-type', b'application/json'), (b'X-Id', b'')], b'\"ok\"',"
    "  [(['status'], 'ok'), (['items', 0, 'id'], 7), (['items', -1, 'name'], 'caf\\u00e9 \\U0001F600'),"
    "   (['ratio'], 0.5), (['flag'], True), (['none'], None), (['big'], 12345678901234567890),"
    "   (['neg'], -3.0), (['off'], False)], 512)])",
    /* 3: a long body_contains (the window across pieces and chunks), any 2xx */
    "dict(requests=[b'GET /b HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'], weights=[1],"
    " expects=[([], [], b'0123456789abcdefghijklmnopqrstuvwxyz-the-needle', [], 0)])",
    /* 4: deep JSON paths, max_body 1 MiB */
    "dict(requests=[b'GET /c HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'], weights=[1],"
    " expects=[([200], [], None, [(['a', 'b', 'c', 'd', 0, 1, -2], 1), (['a', 'b', 'c', 'd', -1], 5),"
    "  (['\\u00e9\"'], 'a\\nb')], 1 << 20)])",
    /* 5: a journey program */
    "dict(requests=[], weights=[], program=dict(slots=7,"
    " names=['token', 'loc', 'id', 'status', 'sid', 'etag', 'last'],"
    " initial=[(4, b'none')], journeys=[(1, [0, 1, 2, 3, 4])], steps=["
    "  dict(head=[b'POST /login HTTP/1.1\\r\\nHost: x\\r\\n'], body=[b'{}'], cookies=True,"
    "       extract=[(0, 'json', ['token']), (1, 'header', 'Location'), (2, 'regex', 'id=([0-9]+)'),"
    "                (3, 'status')]),"
    "  dict(head=[b'GET /items/', (2, 1), b'?t=', (0, 1), b' HTTP/1.1\\r\\nAuthorization: Bearer ', (0, 0),"
    "             b'\\r\\nX-Loc: ', (1, 0), b'\\r\\n'], body=[b'{\"t\": \"', (0, 2), b'\", \"s\": ', (3, 0), b'}'],"
    "       cookies=True),"
    "  dict(head=[b'GET /poll HTTP/1.1\\r\\n'], extract=[(4, 'regex', 'ready|done')], poll=(0.1, 1.0)),"
    "  dict(head=[b'HEAD /h HTTP/1.1\\r\\n'], extract=[(5, 'header', 'etag')], cookies=True),"
    "  dict(head=[b'GET /l HTTP/1.1\\r\\n'], extract=[(6, 'json', ['list', -1, 'v'])]),"
    " ]), expects=[([200], [], None, [(['ok'], True)], 2048), None, None, None,"
    "             ([], [], b'list', [], 4096)])",
    /* 6: streaming responses: server-sent events, chunks, lines */
    "dict(requests=[b'GET /sse HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n', b'GET /chunks HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n',"
    " b'GET /lines HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'], weights=[1, 1, 1], streams=['sse', 'chunks', 'lines'],"
    " expects=[None, None, ([], [], b'\\n', [], 0)])",
};
#define NCONFIGS (sizeof(CONFIGS) / sizeof(CONFIGS[0]))

static Engine *engines[NCONFIGS];

/* What Engine.run allocates before its loop, for one connection (the loop itself is not run). */
static int prepare(Engine *E) {
    E->nconns = 1;
    E->conns = xcalloc(1, sizeof(conn_t));
    E->free_slots = xcalloc(1, sizeof(int32_t));
    int checks = 0;
    for (uint32_t i = 0; i < E->nep; i++) checks |= E->eps[i].x != NULL;
    if (checks) E->xs = xcalloc(1, sizeof(xstate *));
    int streams = 0;
    for (uint32_t i = 0; i < E->nep; i++) streams |= E->eps[i].st != NULL;
    if (streams) E->ss = xcalloc(1, sizeof(sstate));
    E->SE = xcalloc(E->nep, sizeof(series_t *)); /* the endpoints' series, made on first use */
    if (!E->conns || !E->free_slots || (checks && !E->xs) || (streams && !E->ss) || series_init(&E->S) < 0 ||
        !E->SE)
        return -1;
    if (E->prog) {
        E->heap = xcalloc(1, sizeof(titem));
        if (!E->heap || users_init(E) < 0) return -1;
    }
    E->conns[0].fd = -1;
    E->conns[0].prev = E->conns[0].next = -1;
    E->busy_head = E->busy_tail = E->idle_head = -1;
    return 0;
}

static Engine *make_engine(PyObject *globals, const char *kwargs_expr) {
    PyObject *kw = PyRun_String(kwargs_expr, Py_eval_input, globals, globals);
    if (!kw) goto fail;
    PyObject *base = Py_BuildValue("{s:s,s:i,s:i,s:[(ddd)]}", "host", "127.0.0.1", "port", 9, "max_connections", 1,
                                   "stages", 1.0, 1.0, 1.0);
    if (!base || PyDict_Merge(base, kw, 1) < 0) goto fail;
    PyObject *none = PyTuple_New(0);
    Engine *E = (Engine *)PyObject_Call((PyObject *)&EngineType, none, base);
    Py_DECREF(none);
    Py_DECREF(base);
    Py_DECREF(kw);
    if (!E) goto fail;
    if (prepare(E) < 0) {
        fprintf(stderr, "parser_fuzz: out of memory\n");
        abort();
    }
    return E;
fail:
    PyErr_Print();
    fprintf(stderr, "parser_fuzz: configuration not accepted: %s\n", kwargs_expr);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    Py_InitializeEx(0);
    PyObject *m = PyInit__engine(); /* the layouts and the Engine type */
    if (!m) {
        PyErr_Print();
        abort();
    }
    PyObject *globals = PyDict_New();
    PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
    for (size_t i = 0; i < NCONFIGS; i++) engines[i] = make_engine(globals, CONFIGS[i]);
    Py_DECREF(globals);
    return 0;
}

/* --- one input ------------------------------------------------------------------------------ */

/* What the parser made of an input: each response's status (":kind" when judged a failure,
 * ":extract" when an extraction failed) or "protocol" (the connection is then closed: the
 * rest of the input is not read), then a program's variables and the failures kept. */
typedef struct {
    char text[16384];
    size_t len;
} transcript;

static void say(transcript *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(transcript *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (t->len < sizeof(t->text) - 1) {
        int w = vsnprintf(t->text + t->len, sizeof(t->text) - t->len, fmt, ap);
        if (w > 0) t->len += (size_t)w;
        if (t->len > sizeof(t->text) - 1) t->len = sizeof(t->text) - 1;
    }
    va_end(ap);
}

/* printable, for the transcript */
static void say_bytes(transcript *t, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            say(t, "%c", ch);
        else
            say(t, "\\x%02x", ch);
    }
}

/* What step_send / begin do before a response is read. */
static void start_response(Engine *E, conn_t *c, uint32_t ep, int phase) {
    if (E->prog) {
        endpoint *e = &E->eps[ep];
        c->ep = ep;
        c->phase = (uint8_t)phase;
        c->pstate = P_HEAD;
        c->hlen = 0;
        c->status = 0;
        c->flags = e->head ? F_HEAD : 0;
        x_begin(E, c, e->x, phase == PH_MEASURED);
    } else {
        begin(E, c, ep, 0, phase, 1);
        busy_remove(E, c);
    }
}

/* What complete() / prog_complete() do with a complete response, sockets and timing aside. */
static void finish_response(Engine *E, conn_t *c, transcript *t) {
    endpoint *e = &E->eps[c->ep];
    say(t, " %d", c->status);
    if (!E->prog) {
        int err = -1;
        if (c->flags & F_X) {
            err = x_judge(E, e, c, 1);
            x_release(E, c);
            if (err >= 0) say(t, ":%s", ERROR_KINDS[err]);
        }
        if (c->flags & F_STREAM) { /* the events must not depend on where the reads split them */
            s_complete(E, c, E->read_ns, err);
            const sstate *s = &E->ss[0];
            say(t, " events=%llu bytes=%llu", (unsigned long long)s->events, (unsigned long long)s->bytes);
        }
        return;
    }
    program_t *P = E->prog;
    vuser_t *u = &E->vu[0];
    const pstep_t *st = &P->steps[c->ep];
    if (st->cookies) take_cookies(u);
    int err = x_judge(E, e, c, 1);
    if (err >= 0) {
        say(t, ":%s", ERROR_KINDS[err]);
    } else if (st->nex) {
        char why[WHY_MAX];
        why[0] = 0;
        if (extract_all(E, c, u, st, why) < 0) {
            say(t, ":extract");
            if (c->flags & F_KEEP) x_keep(e->x, E->xs[0], c->status, E_ASSERT, XF_EXTRACT, 0, why, strlen(why));
        }
    }
    x_release(E, c);
    for (uint32_t k = 0; k < P->nsteps; k++) { /* the next requests, from what was extracted */
        char why[WHY_MAX];
        if (build_request(E, u, &P->steps[k], why) == 0 && u->reqlen > u->reqcap) abort();
    }
}

static size_t next_split(uint32_t *rng, size_t left) {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    uint32_t r = *rng;
    size_t n;
    switch (r & 3) {
    case 0: n = 1 + ((r >> 2) & 3); break;  /* a few bytes: every state boundary */
    case 1: n = 1 + ((r >> 2) & 63); break; /* a line or so */
    case 2: n = 1 + ((r >> 2) % 4096); break;
    default: n = left; break; /* all the rest, as one read */
    }
    return n < left ? n : left;
}

/* rng 0: the whole stream in one piece, as one read */
static void run_stream(Engine *E, int phase, uint32_t ep, uint32_t rng, const char *stream, size_t n,
                       transcript *t) {
    conn_t *c = &E->conns[0];
    size_t pos = 0;
    for (uint32_t i = 0; i < E->nep; i++)
        if (E->eps[i].x) E->eps[i].x->nkept = 0;
    if (E->prog && vars_reset(E, &E->vu[0]) < 0) abort();
    start_response(E, c, ep, phase);
    int got = 0; /* bytes of the current response were parsed */
    while (pos < n) {
        size_t len = rng ? next_split(&rng, n - pos) : n - pos;
        char *piece = malloc(len);
        if (!piece) abort();
        memcpy(piece, stream + pos, len);
        E->read_ns = 1000 * (int64_t)(pos + len); /* a clock for the stream's events: any will do */
        size_t extra = 0;
        int r = parse(E, c, piece, len, &extra);
        free(piece);
        got = 1;
        if (r == PARSE_NEED) {
            pos += len;
            continue;
        }
        if (r == PARSE_ERROR) { /* fail(): the connection is closed, the rest unread */
            say(t, " protocol");
            got = 0;
            break;
        }
        if (extra > len) abort(); /* the parser says it used fewer than 0 bytes */
        finish_response(E, c, t);
        pos += len - extra; /* more than one response: a new one starts there */
        ep = (ep + 1) % E->nep;
        start_response(E, c, ep, phase);
        got = 0;
    }
    if (got && c->pstate == P_UNTIL_CLOSE) finish_response(E, c, t); /* the server closed: the body ends */
    if (E->prog)
        for (int s = 0; s < E->prog->nslots; s++) {
            const vval *v = &E->vu[0].cur[s];
            if (!v->set) continue;
            say(t, " %s=", E->prog->names[s]);
            say_bytes(t, v->p, v->len);
        }
    if (E->prog && E->vu[0].jar)
        for (int k = 0; k < E->vu[0].jar->n; k++) {
            say(t, " cookie:");
            say_bytes(t, E->vu[0].jar->kv[k].p, E->vu[0].jar->kv[k].len);
        }
    for (uint32_t i = 0; i < E->nep; i++) { /* the kept failures, and as results() returns them */
        const expect_t *x = E->eps[i].x;
        if (!x || !x->nkept) continue;
        for (int k = 0; k < x->nkept; k++) {
            const xfail_t *f = &x->kept[k];
            say(t, " [step %u: %d %s %s#%d %lld bytes \"", i, f->status, ERROR_KINDS[f->kind], X_KINDS[f->what],
                f->index, (long long)f->body_len);
            say_bytes(t, f->excerpt, f->excerpt_len);
            say(t, "\"");
            if (f->has_detail) {
                say(t, " detail \"");
                say_bytes(t, f->detail, f->detail_len);
                say(t, "\"");
            }
            say(t, "]");
        }
        PyObject *l = failures_list(x);
        if (!l) {
            PyErr_Print();
            abort();
        }
        Py_DECREF(l);
    }
}

static transcript whole, split;

static void run_input(const uint8_t *data, size_t size, int compare, transcript *out) {
    out->len = 0;
    out->text[0] = 0;
    if (size < 4) return;
    Engine *E = engines[data[0] % NCONFIGS];
    int phase = data[1] & 1 ? PH_WARMUP : PH_MEASURED;
    uint32_t ep = (uint32_t)(data[1] >> 1) % E->nep;
    uint32_t rng = ((uint32_t)data[2] << 8 | data[3]) * 2654435761u | 1u;
    const char *stream = (const char *)data + 4;
    size_t n = size - 4;
    run_stream(E, phase, ep, rng, stream, n, out);
    if (!compare) return;
    /* The same bytes in one read must come out the same: the split points are the network's. */
    whole.len = 0;
    run_stream(E, phase, ep, 0, stream, n, &whole);
    if (whole.len != out->len || memcmp(whole.text, out->text, out->len) != 0) {
        fprintf(stderr, "parser_fuzz: the outcome depends on where the bytes are split\n  in one read:%.*s\n  split:      %.*s\n",
                (int)whole.len, whole.text, (int)out->len, out->text);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    run_input(data, size, 1, &split);
    return 0;
}

#ifdef FUZZ_MAIN
/* Run each file named on the command line (as the fuzzer does, comparing split and whole);
 * print "NAME: TRANSCRIPT" for each. */
int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    for (int a = 1; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (!f) {
            perror(argv[a]);
            return 2;
        }
        size_t cap = 1 << 16, len = 0, k;
        uint8_t *buf = malloc(cap);
        while (buf && (k = fread(buf + len, 1, cap - len, f)) > 0) {
            len += k;
            if (len == cap) buf = realloc(buf, cap *= 2);
        }
        fclose(f);
        if (!buf) return 2;
        run_input(buf, len, 1, &split);
        const char *name = strrchr(argv[a], '/');
        printf("%s:%.*s\n", name ? name + 1 : argv[a], (int)split.len, split.text);
        free(buf);
    }
    return 0;
}
#endif
