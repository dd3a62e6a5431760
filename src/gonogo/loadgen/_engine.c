/*
 * gonogo.loadgen._engine: the hot loop of the load generator.
 *
 * One Engine object runs one worker's share of a load test on the calling thread,
 * with the GIL released: epoll, non-blocking keep-alive HTTP/1.1 connections with
 * TCP_NODELAY, pre-serialized requests, and a response parser that skips bodies
 * without copying them. Linux only. Traffic may only go to a loopback address.
 *
 * Two load models:
 *   open   - arrivals follow a schedule (constant or linearly ramping stages,
 *            optionally Poisson). Every arrival has an *intended* send time. If no
 *            connection is free at that time, the request waits in a FIFO queue;
 *            `max_connections` caps concurrency. A request that waited longer than
 *            `timeout` (or found the queue full) is *dropped* and counted. An arrival
 *            the loop itself handled more than `late_threshold` after its time counts
 *            as *behind*: the generator, not the server, was late for it.
 *   closed - `users` virtual users, one connection each, `think_time` between a
 *            response and the user's next request.
 *
 * Every response is recorded twice in microseconds: from the intended time
 * (corrected for coordinated omission, as wrk2 does) and from the time the request
 * was handed to a connection (uncorrected). The histograms use exactly
 * HdrHistogram's bucket/sub-bucket layout (lowest discernible 1 us, highest
 * trackable 3,600,000,000 us, 3 significant digits) so the Python side rebuilds a
 * real hdrh HdrHistogram from the counts without loss.
 *
 * Per-second series (measured phase only): requests sent, responses, errors by kind,
 * late, dropped, max scheduling lag and a 2-significant-digit corrected-latency
 * histogram kept sparse (index, count) pairs; plus, in the same form, the ages at the
 * second's end of the requests still unanswered then (sent or queued), measured from
 * their intended time. The same per endpoint (program mode: per step), allocated on the
 * endpoint's first measured traffic and holding only its seconds with something in them
 * (no max lag: that is the loop's); the run's series closes their seconds with its own.
 *
 * About every 50 ms the loop re-acquires the GIL briefly: PyErr_CheckSignals (so
 * Ctrl-C stops the run), the optional `should_stop` callable, and once per wall
 * second the optional `progress` callable. On any of these the loop closes every
 * socket first; the data recorded so far stays readable through results().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <regex.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* Constants                                                                  */
/* ------------------------------------------------------------------------- */

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define HIGHEST_TRACKABLE 3600000000LL /* microseconds: one hour */
#define MAIN_SIGFIGS 3
#define SERIES_SIGFIGS 2
#define NSTATUS 1000          /* status codes 0..999 counted directly */
#define READ_BUF (256 * 1024) /* one shared read buffer: bodies are skipped in it */
#define MAX_HEAD (64 * 1024)  /* response header block larger than this: protocol error */
#define MAX_EVENTS 512
#define TICK_NS (50 * NS_PER_MS)             /* signal check / should_stop cadence */
#define CONNECT_ERROR_PAUSE_NS (10 * NS_PER_MS) /* closed model: pause after a failed connect */
/* Closed model: a user's setup is tried at most `setup_attempts` times, the k-th retry after a
 * jittered exponential backoff (SETUP_BACKOFF_NS * 2^(k-1), at most SETUP_BACKOFF_MAX_NS, or
 * the failed attempt's duration if longer; times 0.5 to 1; at least the think time): a server
 * still busy with the timed-out sign-ups must not get a storm of new ones. The Python driver (journey_driver.py) has the same. */
#define SETUP_BACKOFF_NS (500 * NS_PER_MS)
#define SETUP_BACKOFF_MAX_NS (8 * NS_PER_S)
#define MAX_ENDPOINTS 4096
/* response expectations: every bound the parser of a hostile server's bytes relies on */
#define KEEP_FAILURES 5           /* failing responses kept per endpoint, measured phase */
#define EXCERPT_MAX 256           /* bytes of a failing response's body kept */
#define DETAIL_MAX 160            /* bytes of the value found where another was expected */
#define NEEDLE_MAX 1024           /* longest body_contains text */
#define MAX_XHEADERS 16           /* expected headers per request */
#define MAX_XJSON 32              /* JSON fields per request */
#define MAX_JPARTS 32             /* steps of one JSON path */
#define MAX_BODY_LIMIT (64LL << 20) /* the largest max_body */
#define JSON_MAX_DEPTH 512
#define JSON_MAX_DEPTH_TEXT "512"
#define XBUF_KEEP (64 * 1024)     /* a connection's JSON buffer above this is freed after use */

/* Error kinds: keep in sync with ERROR_KINDS below and engine.py. */
enum {
    E_4XX,      /* response with status 400-499 (a response, but an error) */
    E_5XX,      /* response with status 500-599 */
    E_REFUSED,  /* connect: ECONNREFUSED */
    E_CONNECT,  /* connect: any other failure (unreachable, no local port, fd limit) */
    E_RESET,    /* ECONNRESET / EPIPE while sending or receiving */
    E_CLOSED,   /* server closed the connection before the response was complete */
    E_TIMEOUT,  /* no complete response within `timeout` of sending */
    E_PROTOCOL, /* unparseable or unsupported response */
    E_ASSERT,   /* a response that failed its request's `expect` (other than a 4xx/5xx status) */
    NERR
};
static const char *const ERROR_KINDS[NERR] = {"http_4xx", "http_5xx", "refused", "connect", "reset",
                                             "closed",   "timeout",  "protocol", "assertion"};

enum { PH_MEASURED = 0, PH_WARMUP = 1 };

/* Connection states. */
enum {
    C_FREE,       /* no socket */
    C_CONNECTING, /* non-blocking connect in progress, a request is attached */
    C_WRITING,    /* request partially written (large body), waiting for EPOLLOUT */
    C_READING,    /* request written, waiting for the response */
    C_IDLE        /* open keep-alive connection without a request (open model pool) */
};

/* Parser states. */
enum {
    P_HEAD,
    P_BODY,
    P_UNTIL_CLOSE,
    P_CHUNK_SIZE,
    P_CHUNK_EXT,
    P_CHUNK_SIZE_LF,
    P_CHUNK_DATA,
    P_CHUNK_DATA_CR,
    P_CHUNK_DATA_LF,
    P_TRAILER_START,
    P_TRAILER_LINE,
    P_TRAILER_END_LF
};
enum { PARSE_NEED = 0, PARSE_DONE = 1, PARSE_ERROR = -1 };

/* Connection flags. */
#define F_CLOSE 0x01   /* close after this response (Connection: close, HTTP/1.0, desync) */
#define F_HEAD 0x02    /* current request is HEAD: response has no body */
#define F_GOT 0x04     /* some response bytes were received for the current request */
#define F_RETRIED 0x08 /* current request was already retried once on a new connection */
#define F_X 0x10       /* current request's endpoint has expectations: judge the response */
#define F_XBODY 0x20   /* ... and its body is read (body_contains, JSON fields, an excerpt) */
#define F_KEEP 0x40    /* ... and a failing response is kept as evidence (if room is left) */
#define F_STREAM 0x80  /* current request's endpoint answers with a stream: its events are timed */

/* ------------------------------------------------------------------------- */
/* HdrHistogram-compatible bucket layout (unit magnitude 0: lowest value 1)  */
/* ------------------------------------------------------------------------- */

typedef struct {
    int half_mag;       /* sub_bucket_half_count_magnitude */
    int64_t half_count; /* sub_bucket_half_count */
    int64_t mask;       /* sub_bucket_mask */
    int32_t counts_len;
} hlayout;

/* Mirrors HdrHistogram's constructor (hdrh/histogram.py, HdrHistogram_c). */
static void hlayout_init(hlayout *l, int sigfigs) {
    double largest_single_unit = 2.0 * pow(10.0, sigfigs);
    int mag = (int)ceil(log2(largest_single_unit));
    l->half_mag = mag > 1 ? mag - 1 : 0;
    int64_t sub_count = (int64_t)1 << (l->half_mag + 1);
    l->half_count = sub_count / 2;
    l->mask = sub_count - 1;
    int64_t smallest_untrackable = sub_count;
    int buckets = 1;
    while (smallest_untrackable <= HIGHEST_TRACKABLE) {
        smallest_untrackable <<= 1;
        buckets++;
    }
    l->counts_len = (int32_t)((buckets + 1) * l->half_count);
}

/* counts index of a value, exactly as HdrHistogram computes it; values outside
 * [0, highest trackable] are clamped (a latency over an hour is recorded as an hour). */
static inline int32_t hindex(const hlayout *l, int64_t v) {
    if (v < 0) v = 0;
    if (v > HIGHEST_TRACKABLE) v = HIGHEST_TRACKABLE;
    int pow2ceiling = 64 - __builtin_clzll((uint64_t)v | (uint64_t)l->mask);
    int bucket = pow2ceiling - (l->half_mag + 1);
    int64_t sub = v >> bucket;
    return (int32_t)((((int64_t)bucket + 1) << l->half_mag) + sub - l->half_count);
}

static hlayout L_MAIN, L_SERIES;

/* ------------------------------------------------------------------------- */
/* Data structures                                                            */
/* ------------------------------------------------------------------------- */

typedef struct {
    uint64_t sent, responses, late, dropped;
    uint64_t behind;     /* arrivals (closed: sends) the loop itself handled more than late_ns after their time */
    uint64_t unfinished; /* sent, no outcome: the run was stopped */
    uint64_t unsent;     /* scheduled, still queued when the run was stopped */
    uint64_t errors[NERR];
} counters;

typedef struct {
    char *req; /* the serialized request */
    size_t len;
    int head; /* HEAD request: response has no body */
    counters c[2];
    uint64_t *status[2]; /* NSTATUS counters per phase */
    uint64_t *hcorr, *hunc; /* measured phase only, L_MAIN layout */
    struct expect_s *x;     /* NULL: no expectations */
    int stream;             /* S_NONE, or how its response body divides into events */
    struct stream_s *st;    /* NULL: not a stream */
} endpoint;

typedef struct {
    int64_t second;
    double span; /* seconds covered: 1 except for the last record */
    uint64_t sent, responses, late, dropped;
    uint64_t errors[NERR];
    int64_t max_lag_ns;
    size_t hoff, hlen; /* (index, count) pairs in series.sparse */
    size_t poff, plen; /* pending: ages at the second's end of the requests still unanswered then */
} secrec;

typedef struct {
    int64_t base_ns; /* start of second 0: the start of the measured phase */
    int started;
    int64_t cur, next_ns;
    secrec curr;
    uint32_t *dense; /* current second's histogram, L_SERIES layout */
    int32_t dmin, dmax;
    secrec *recs;
    size_t n, cap;
    uint32_t *sparse; /* pairs */
    size_t ns, scap;
    size_t delivered; /* records already handed to the progress callback */
} series_t;

typedef struct conn {
    int fd;
    uint8_t state, phase, pstate, flags;
    uint32_t ep;
    int32_t status;
    int32_t prev, next; /* busy list (deadline order) or idle list */
    int64_t intended, sent, deadline;
    int64_t remaining; /* body / chunk bytes left */
    size_t woff;       /* request bytes written */
    uint64_t nreq;     /* responses completed on this socket */
    char *hbuf;        /* header bytes split across reads (rare) */
    uint32_t hlen, hcap;
    uint32_t digits; /* chunk-size digits seen */
    uint32_t gen;    /* socket generation: tells stale epoll events from current ones */
} conn_t;

typedef struct {
    int64_t intended;
    uint32_t ep;
    uint32_t phase;
} qitem;

typedef struct {
    int64_t due;
    int32_t user;
} titem;

typedef struct {
    double dur, r0, r1, cum0, t0; /* t0: stage start in seconds from run start */
} stage_t;

/* A weighted choice among n items: a deterministic smooth weighted round-robin sequence,
 * or, for very large weight totals, a seeded random choice by cumulative weight. */
typedef struct {
    uint32_t n;
    uint32_t *seq;
    size_t seqlen, seqpos;
    double *cumw;
    double wtotal;
} wrr_t;

typedef struct {
    PyObject_HEAD
    /* --- configuration --- */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;
    endpoint *eps;
    uint32_t nep;
    wrr_t mix; /* which endpoint each request goes to */
    int closed;
    stage_t *stages;
    int nstages;
    int poisson;
    uint64_t rng[4];
    int users;
    int64_t think_ns;
    double duration_s; /* closed model: measured duration; 0: none */
    uint64_t max_requests;
    int64_t warmup_ns, timeout_ns, late_ns;
    int max_conn;
    size_t max_queue;
    int64_t start_at_ns;
    double arrival_offset;

    /* --- run state --- */
    int ran, running;
    int stop_flag; /* written by stop() from any thread: accessed atomically */
    int epfd;
    char *buf;
    conn_t *conns;
    int nconns;
    int32_t busy_head, busy_tail;
    int32_t idle_head; /* idle connections, LIFO (most recently used first) */
    int32_t *free_slots;
    int nfree;
    int nopen;
    qitem *q;
    size_t qcap, qhead, qlen;
    titem *tq; /* closed model think timers; FIFO since think time is constant */
    size_t tqcap, tqhead, tqlen;
    int64_t start_ns, measure_ns, end_ns, finish_ns;
    double n_next; /* schedule position in "operational time" (arrival count) */
    int stage_i;
    int64_t next_arrival;
    int sched_done;
    uint64_t measured_issued;
    int64_t max_lag_ns;
    uint64_t conns_opened, retries;
    series_t S;
    series_t **SE; /* per endpoint, NULL until its first measured traffic (see ep_at) */
    double cpu_user, cpu_sys;
    const char *stopped; /* NULL, "signal", "stop" or "error" */
    int64_t next_tick, next_progress;
    PyObject *exc_type, *exc_value, *exc_tb;
    PyThreadState *tstate;
    PyObject *progress_cb, *stop_cb;
    struct xstate_s **xs; /* per connection, allocated on first use; NULL: no endpoint has `expect` */
    struct sstate_s *ss;  /* per connection; NULL: no endpoint answers with a stream */
    int64_t read_ns;      /* when the bytes being parsed arrived (set for streaming requests only) */
    /* --- program mode (journeys): NULL otherwise --- */
    struct program_s *prog;
    struct vuser_s *vu; /* one virtual user per connection slot */
    titem *heap;        /* the users' timers (think times, polls, next iterations): a min-heap by due */
    size_t heaplen;
    uint64_t urng[4];   /* for UUIDs: seeded from the kernel, not from `seed` */
    int teardown_begun;
    /* users past their last iteration; once all are, the drain is over (drained_ns) and the
     * teardowns waiting for it start: none runs while a measured iteration still drains */
    int users_ended;
    int64_t drained_ns;
    uint64_t users_set_up, setup_failures; /* so far, for progress (the Python driver's words) */
    /* closed model with a setup: the measured phase starts a warm-up after every user's setup
     * has ended (set up, or given up after `setup_attempts`); until then
     * measure_ns and end_ns are INT64_MAX. setups_ended_ns: when the last ended (0: not yet) */
    int setups_pending;
    uint64_t setups_given_up;
    int64_t setups_ended_ns;
} Engine;

/* ------------------------------------------------------------------------- */
/* Small helpers                                                              */
/* ------------------------------------------------------------------------- */

static inline int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
static uint64_t rng_next(uint64_t *s) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static inline double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static void *xcalloc(size_t n, size_t size) { return n ? calloc(n, size) : calloc(1, 1); }

/* --- weighted choice -------------------------------------------------------- */

static uint32_t wrr_next(wrr_t *m, uint64_t *rng) {
    if (m->seq) {
        uint32_t i = m->seq[m->seqpos];
        if (++m->seqpos == m->seqlen) m->seqpos = 0;
        return i;
    }
    double u = rng_unit(rng) * m->wtotal;
    uint32_t lo = 0, hi = m->n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (m->cumw[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int wrr_build(wrr_t *m, const int64_t *w, uint32_t n, uint64_t offset) {
    /* reduce weights by their gcd */
    int64_t g = 0;
    m->n = n;
    for (uint32_t i = 0; i < n; i++) {
        int64_t a = w[i], b = g;
        while (b) {
            int64_t t = a % b;
            a = b;
            b = t;
        }
        g = a;
    }
    double total = 0;
    for (uint32_t i = 0; i < n; i++) total += (double)(w[i] / g);
    m->wtotal = total;
    if (total <= (double)(1 << 20) && total * n <= 5e7) {
        /* smooth weighted round-robin: a deterministic, evenly interleaved sequence */
        m->seqlen = (size_t)total;
        m->seq = malloc(m->seqlen * sizeof(uint32_t));
        int64_t *cur = xcalloc(n, sizeof(int64_t));
        if (!m->seq || !cur) {
            free(cur);
            PyErr_NoMemory();
            return -1;
        }
        for (size_t k = 0; k < m->seqlen; k++) {
            uint32_t best = 0;
            for (uint32_t i = 0; i < n; i++) {
                cur[i] += w[i] / g;
                if (cur[i] > cur[best]) best = i;
            }
            cur[best] -= (int64_t)total;
            m->seq[k] = best;
        }
        free(cur);
        m->seqpos = (size_t)(offset % m->seqlen);
        return 0;
    }
    /* very large weight totals: seeded random choice by cumulative weight */
    m->cumw = malloc(n * sizeof(double));
    if (!m->cumw) {
        PyErr_NoMemory();
        return -1;
    }
    double acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc += (double)(w[i] / g);
        m->cumw[i] = acc;
    }
    return 0;
}

static void wrr_free(wrr_t *m) {
    free(m->seq);
    free(m->cumw);
    m->seq = NULL;
    m->cumw = NULL;
}

static inline int ieq(const char *a, const char *lower, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != lower[i]) return 0;
    }
    return 1;
}

/* case-insensitive search of a lowercase token in [p, p+n) */
static int contains_ci(const char *p, size_t n, const char *tok) {
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (ieq(p + i, tok, tl)) return 1;
    return 0;
}


/* ------------------------------------------------------------------------- */
/* Per-second series                                                          */
/* ------------------------------------------------------------------------- */

static int series_init(series_t *S) {
    memset(S, 0, sizeof(*S));
    S->dense = xcalloc((size_t)L_SERIES.counts_len, sizeof(uint32_t));
    S->dmin = INT32_MAX;
    S->dmax = -1;
    return S->dense ? 0 : -1;
}

static void series_free(series_t *S) {
    free(S->dense);
    free(S->recs);
    free(S->sparse);
    memset(S, 0, sizeof(*S));
}

static inline void series_latency(series_t *S, int64_t us);

/* Move the dense histogram to the sparse pairs (at *off, *len of them) and clear it. */
static void series_emit(series_t *S, size_t *off, size_t *len) {
    *off = S->ns;
    *len = 0;
    for (int32_t i = S->dmin; i <= S->dmax; i++) {
        if (!S->dense[i]) continue;
        if (S->ns + 1 > S->scap) {
            size_t ncap = S->scap ? S->scap * 2 : 4096;
            uint32_t *p = realloc(S->sparse, ncap * 2 * sizeof(uint32_t));
            if (!p) break;
            S->sparse = p;
            S->scap = ncap;
        }
        S->sparse[2 * S->ns] = (uint32_t)i;
        S->sparse[2 * S->ns + 1] = S->dense[i];
        S->ns++;
        (*len)++;
        S->dense[i] = 0;
    }
    if (S->dmax >= 0 && S->dmin <= S->dmax)
        memset(S->dense + S->dmin, 0, (size_t)(S->dmax - S->dmin + 1) * sizeof(uint32_t));
    S->dmin = INT32_MAX;
    S->dmax = -1;
}

static inline series_t *ep_series(Engine *E, uint32_t ep);
static uint32_t queued_endpoint(Engine *E, uint32_t ep);

/* The ages at instant `at` of the measured-phase requests intended before it and still
 * unanswered: those on busy connections and those queued for one. A second in which a
 * stalled server answered nothing still shows how long its users had been waiting. Each
 * age goes to the run's series and to its endpoint's (a queued journey arrival: its first
 * step's), so an endpoint that stalls shows it in its own series too. */
static void series_pending(series_t *S, int64_t at) {
    Engine *E = (Engine *)((char *)S - offsetof(Engine, S));
    for (int32_t i = E->busy_head; i >= 0; i = E->conns[i].next) {
        conn_t *c = &E->conns[i];
        if (c->phase != PH_MEASURED || c->intended >= at) continue;
        int64_t age = (at - c->intended) / 1000;
        series_latency(S, age);
        series_t *es = ep_series(E, c->ep);
        if (es) series_latency(es, age);
    }
    for (size_t k = 0; k < E->qlen; k++) {
        qitem *it = &E->q[(E->qhead + k) % E->qcap];
        if (it->phase != PH_MEASURED || it->intended >= at) continue;
        int64_t age = (at - it->intended) / 1000;
        series_latency(S, age);
        series_t *es = ep_series(E, queued_endpoint(E, it->ep));
        if (es) series_latency(es, age);
    }
}

static void series_push(series_t *S, const secrec *r) {
    if (S->n + 1 > S->cap) {
        size_t ncap = S->cap ? S->cap * 2 : 256;
        secrec *p = realloc(S->recs, ncap * sizeof(secrec));
        if (!p) return; /* keep going; the record is lost, not the run */
        S->recs = p;
        S->cap = ncap;
    }
    S->recs[S->n++] = *r;
}

static inline int secrec_empty(const secrec *r) {
    uint64_t any = r->sent | r->responses | r->late | r->dropped | r->hlen | r->plen;
    for (int j = 0; j < NERR; j++) any |= r->errors[j];
    return !any;
}

/* Close the current second, which ends at `at`: its histogram goes to the sparse pairs,
 * then the ages of the requests pending at its end. Allocation failure here loses only
 * that second's histograms, never counts. */
static void series_finalize(series_t *S, double span, int64_t at) {
    Engine *E = (Engine *)((char *)S - offsetof(Engine, S));
    secrec *r = &S->curr;
    r->span = span;
    series_emit(S, &r->hoff, &r->hlen);
    for (uint32_t i = 0; i < E->nep; i++)
        if (E->SE[i]) series_emit(E->SE[i], &E->SE[i]->curr.hoff, &E->SE[i]->curr.hlen);
    series_pending(S, at);
    series_emit(S, &r->poff, &r->plen);
    series_push(S, r);
    /* the endpoints' records of this second: only those with something in it */
    for (uint32_t i = 0; i < E->nep; i++) {
        series_t *es = E->SE[i];
        if (!es) continue;
        secrec *er = &es->curr;
        series_emit(es, &er->poff, &er->plen);
        er->second = r->second;
        er->span = span;
        if (!secrec_empty(er)) series_push(es, er);
        memset(er, 0, sizeof(*er));
    }
}

/* The record for time `now` (>= base), closing finished seconds on the way. */
static secrec *series_roll(series_t *S, int64_t now) {
    if (!S->started) {
        S->started = 1;
        S->cur = 0;
        S->next_ns = S->base_ns + NS_PER_S;
        memset(&S->curr, 0, sizeof(S->curr));
    }
    while (now >= S->next_ns) {
        series_finalize(S, 1.0, S->next_ns);
        S->cur++;
        S->next_ns += NS_PER_S;
        memset(&S->curr, 0, sizeof(S->curr));
        S->curr.second = S->cur;
    }
    return &S->curr;
}

static inline secrec *series_at(series_t *S, int64_t now) {
    if (__builtin_expect(S->started && now < S->next_ns, 1)) return &S->curr;
    return series_roll(S, now);
}

static inline void series_count(series_t *S, int32_t i) {
    S->dense[i]++;
    if (i < S->dmin) S->dmin = i;
    if (i > S->dmax) S->dmax = i;
}

static inline void series_latency(series_t *S, int64_t us) { series_count(S, hindex(&L_SERIES, us)); }

/* Endpoint ep's series, allocated on first use; NULL if out of memory (its series is then
 * lost, never the run's). */
static series_t *ep_series_new(Engine *E, uint32_t ep) {
    series_t *es = malloc(sizeof(series_t));
    if (!es || series_init(es) < 0) {
        free(es);
        return NULL;
    }
    return E->SE[ep] = es;
}

static inline series_t *ep_series(Engine *E, uint32_t ep) {
    series_t *es = E->SE[ep];
    return __builtin_expect(es != NULL, 1) ? es : ep_series_new(E, ep);
}

/* The current second's record of the run and, in *er, of endpoint ep (NULL: no memory): the
 * run's series first closes the seconds that ended before `now`, the endpoints' with them. */
static inline secrec *ep_at(Engine *E, uint32_t ep, int64_t now, secrec **er) {
    secrec *r = series_at(&E->S, now);
    series_t *es = ep_series(E, ep);
    *er = es ? &es->curr : NULL;
    return r;
}

/* ------------------------------------------------------------------------- */
/* Connection lists                                                           */
/* ------------------------------------------------------------------------- */

static void busy_append(Engine *E, conn_t *c) {
    int32_t i = (int32_t)(c - E->conns);
    c->prev = E->busy_tail;
    c->next = -1;
    if (E->busy_tail >= 0)
        E->conns[E->busy_tail].next = i;
    else
        E->busy_head = i;
    E->busy_tail = i;
}

static void busy_remove(Engine *E, conn_t *c) {
    if (c->prev >= 0)
        E->conns[c->prev].next = c->next;
    else
        E->busy_head = c->next;
    if (c->next >= 0)
        E->conns[c->next].prev = c->prev;
    else
        E->busy_tail = c->prev;
    c->prev = c->next = -1;
}

/* Program mode: steps have their own timeouts, so the busy list is kept in deadline order
 * by insertion (from the tail: nearly always where it goes). */
static void busy_insert(Engine *E, conn_t *c) {
    int32_t i = (int32_t)(c - E->conns), after = E->busy_tail;
    while (after >= 0 && E->conns[after].deadline > c->deadline) after = E->conns[after].prev;
    c->prev = after;
    c->next = after >= 0 ? E->conns[after].next : E->busy_head;
    if (c->next >= 0)
        E->conns[c->next].prev = i;
    else
        E->busy_tail = i;
    if (after >= 0)
        E->conns[after].next = i;
    else
        E->busy_head = i;
}

static void idle_push(Engine *E, conn_t *c) {
    int32_t i = (int32_t)(c - E->conns);
    c->state = C_IDLE;
    c->prev = -1;
    c->next = E->idle_head;
    if (E->idle_head >= 0) E->conns[E->idle_head].prev = i;
    E->idle_head = i;
}

static void idle_remove(Engine *E, conn_t *c) {
    if (c->prev >= 0)
        E->conns[c->prev].next = c->next;
    else
        E->idle_head = c->next;
    if (c->next >= 0) E->conns[c->next].prev = c->prev;
    c->prev = c->next = -1;
}

static conn_t *idle_pop(Engine *E) {
    if (E->idle_head < 0) return NULL;
    conn_t *c = &E->conns[E->idle_head];
    idle_remove(E, c);
    return c;
}

/* epoll data: slot index and socket generation */
#define EVDATA(E, c) ((uint64_t)((c) - (E)->conns) | ((uint64_t)(c)->gen << 32))

/* Close the socket; the slot stays (closed model: the user's) or returns to the
 * free list (open model). */
static void conn_close(Engine *E, conn_t *c) {
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
        E->nopen--;
    }
    c->state = C_FREE;
    c->hlen = 0;
    if (!E->closed && !E->prog) E->free_slots[E->nfree++] = (int32_t)(c - E->conns);
}

/* Start a non-blocking connect. Returns 0 when in progress or done (state tells),
 * or an error kind. */
static int conn_open(Engine *E, conn_t *c) {
    int fd = socket(E->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return E_CONNECT;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    E->conns_opened++;
    int rc = connect(fd, (struct sockaddr *)&E->addr, E->addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        int kind = errno == ECONNREFUSED ? E_REFUSED : E_CONNECT;
        close(fd);
        return kind;
    }
    c->gen++;
    struct epoll_event ev;
    ev.data.u64 = EVDATA(E, c);
    ev.events = rc == 0 ? EPOLLIN : (EPOLLIN | EPOLLOUT);
    if (epoll_ctl(E->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return E_CONNECT;
    }
    c->fd = fd;
    c->nreq = 0;
    c->state = rc == 0 ? C_READING : C_CONNECTING;
    E->nopen++;
    return 0;
}

static inline int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* ------------------------------------------------------------------------- */
/* Response expectations (the request's `expect`)                             */
/* ------------------------------------------------------------------------- */

/* Everything a hostile or broken server sends is bounded: the expectations are checked
 * while the response streams through the parser. Status and headers in the header parser;
 * `body_contains` by a substring search over the body as it arrives, with a carry-over
 * window of the needle's length - 1 across reads and chunks (the body is never kept);
 * JSON fields on a body buffered up to `max_body` (only for endpoints with JSON fields),
 * validated and searched by a scanner that skips what it does not need (no tree is built),
 * iteratively, at most JSON_MAX_DEPTH levels deep. Endpoints without `expect` pay one flag
 * test per response. */

enum { XF_OK, XF_STATUS, XF_HEADER_MISSING, XF_HEADER_VALUE, XF_BODY, XF_JSON_MISSING, XF_JSON_VALUE, XF_JSON_INVALID,
       XF_TOO_LARGE, XF_EXTRACT, XF_VARIABLE, NXF };
/* XF_EXTRACT (a journey step's extraction found nothing) and XF_VARIABLE (a step not sent: a
 * variable it needs is not set, or cannot go where it is used) have their message as detail. */
static const char *const X_KINDS[NXF] = {"",           "status",       "header_missing", "header_value",
                                             "body",       "json_missing", "json_value",     "json_invalid",
                                             "too_large",  "extract",      "variable"};
enum { J_STR, J_NUM, J_TRUE, J_FALSE, J_NULL, J_EXISTS, J_ABSENT }; /* J_EXISTS/J_ABSENT: only whether it is there */
enum { H_CONTAINS, H_EQUALS, H_ABSENT }; /* an expected header: contains the text, is it (trimmed), is not sent */

typedef struct {
    char *key; /* NULL: an index */
    size_t klen;
    int64_t index; /* negative: from the end */
} jpart;

typedef struct {
    jpart *parts;
    int nparts;
    int type; /* J_* */
    char *s;  /* J_STR: the expected text, UTF-8 */
    size_t slen;
    double num;
    int64_t inum;
    int is_int; /* the expected number is an integer that fits int64: compared exactly */
} xjson;

typedef struct {
    char *name; /* lowercase */
    size_t nlen;
    char *needle;
    size_t len;
    int how; /* H_* */
} xheader;

typedef struct {
    int status, kind, what, index;
    int64_t body_len;
    size_t excerpt_len, detail_len;
    int has_detail;
    char excerpt[EXCERPT_MAX];
    char detail[DETAIL_MAX];
} xfail_t;

typedef struct expect_s {
    uint8_t status_ok[NSTATUS];
    xheader *headers;
    int nheaders;
    char *needle; /* body_contains; NULL: none */
    size_t nlen;
    xjson *json;
    int njson;
    size_t max_body;
    int body;   /* needle or json (or a journey step's extraction): the body must be read */
    int buffer; /* json (or extraction from the body): the body is kept, up to max_body */
    xfail_t kept[KEEP_FAILURES]; /* the first failures of the measured phase */
    int nkept;
} expect_t;

/* One connection's view of the response it is reading, for an endpoint with `expect`. */
typedef struct xstate_s {
    int fail, index; /* X_* of the first unmet expectation, and which header/field */
    uint32_t found;  /* headers found with the expected text (H_ABSENT: found at all), one bit each */
    int64_t body_len;
    int needle_found, too_large, excerpt;
    size_t carry_len;
    char carry[NEEDLE_MAX];
    char *buf; /* the body, for JSON fields */
    size_t len, cap;
    size_t excerpt_len;
    char excerpt_buf[EXCERPT_MAX];
    size_t detail_len;
    int has_detail;
    char detail[DETAIL_MAX];
} xstate;

static void expect_free(expect_t *x) {
    if (!x) return;
    for (int i = 0; i < x->nheaders; i++) {
        free(x->headers[i].name);
        free(x->headers[i].needle);
    }
    free(x->headers);
    for (int i = 0; i < x->njson; i++) {
        for (int k = 0; k < x->json[i].nparts; k++) free(x->json[i].parts[k].key);
        free(x->json[i].parts);
        free(x->json[i].s);
    }
    free(x->json);
    free(x->needle);
    free(x);
}

static void x_detail(xstate *s, const char *p, size_t n) {
    s->has_detail = 1;
    s->detail_len = n < DETAIL_MAX ? n : DETAIL_MAX;
    memcpy(s->detail, p, s->detail_len);
}

/* Body bytes of a response whose endpoint has expectations. */
static void x_feed(const expect_t *x, xstate *s, const char *d, size_t n) {
    s->body_len += (int64_t)n;
    if (s->excerpt && s->excerpt_len < EXCERPT_MAX) {
        size_t take = EXCERPT_MAX - s->excerpt_len < n ? EXCERPT_MAX - s->excerpt_len : n;
        memcpy(s->excerpt_buf + s->excerpt_len, d, take);
        s->excerpt_len += take;
    }
    if (s->fail) return; /* already failed: the rest is only the excerpt */
    if (x->needle && !s->needle_found) {
        size_t nl = x->nlen, keep = nl - 1;
        if (s->carry_len) { /* a match across the previous read (or chunk) and this one */
            char tmp[2 * NEEDLE_MAX];
            size_t take = n < keep ? n : keep;
            memcpy(tmp, s->carry, s->carry_len);
            memcpy(tmp + s->carry_len, d, take);
            if (memmem(tmp, s->carry_len + take, x->needle, nl)) s->needle_found = 1;
        }
        if (!s->needle_found && n >= nl && memmem(d, n, x->needle, nl)) s->needle_found = 1;
        if (!s->needle_found && keep) { /* the last nl - 1 bytes seen */
            if (n >= keep) {
                memcpy(s->carry, d + n - keep, keep);
                s->carry_len = keep;
            } else {
                size_t total = s->carry_len + n, drop = total > keep ? total - keep : 0;
                memmove(s->carry, s->carry + drop, s->carry_len - drop);
                memcpy(s->carry + s->carry_len - drop, d, n);
                s->carry_len = total - drop;
            }
        }
    }
    if (x->buffer && !s->too_large) {
        if (s->len + n > x->max_body) {
            s->too_large = 1;
            return;
        }
        if (s->len + n > s->cap) {
            size_t ncap = s->cap ? s->cap : 4096;
            while (ncap < s->len + n) ncap *= 2;
            if (ncap > x->max_body) ncap = x->max_body;
            char *nb = realloc(s->buf, ncap);
            if (!nb) {
                s->too_large = 1; /* out of memory: judged as a body over the bound */
                return;
            }
            s->buf = nb;
            s->cap = ncap;
        }
        memcpy(s->buf + s->len, d, n);
        s->len += n;
    }
}

/* --- a bounded JSON scanner ------------------------------------------------ */

typedef struct {
    const char *p, *start, *end;
    const char *err;
} jscan;

static inline void jws(jscan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static inline int jfail(jscan *s, const char *why) {
    if (!s->err) s->err = why;
    return -1;
}

static int hex4(const char *p, const char *end, uint32_t *out) {
    if (end - p < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + (uint32_t)h;
    }
    *out = v;
    return 0;
}

/* The next character of a string at s->p (after the opening quote), unescaped, as UTF-8
 * in out (1-4 bytes); returns its length, 0 at the closing quote, -1 on an error. */
static int jchar(jscan *s, char out[4]) {
    if (s->p >= s->end) return jfail(s, "the body ends inside a string");
    unsigned char ch = (unsigned char)*s->p;
    if (ch == '"') return 0;
    if (ch < 0x20) return jfail(s, "a control character inside a string");
    if (ch != '\\') {
        out[0] = (char)ch;
        s->p++;
        return 1;
    }
    if (s->end - s->p < 2) return jfail(s, "the body ends inside a string");
    char e = s->p[1];
    s->p += 2;
    uint32_t cp;
    switch (e) {
    case '"': case '\\': case '/': out[0] = e; return 1;
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u':
        if (hex4(s->p, s->end, &cp) < 0) return jfail(s, "a bad \\u escape");
        s->p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u') {
            uint32_t lo;
            if (hex4(s->p + 2, s->end, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s->p += 6;
            }
        }
        break;
    default:
        return jfail(s, "a bad escape in a string");
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) { /* a lone surrogate too (as Python's json keeps it): equals no UTF-8 text */
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The string at s->p (its opening quote): skipped; returns 1 if it equals `want` once
 * unescaped (want may be NULL: just skip), 0 if not, -1 if it is malformed. */
static int jstring(jscan *s, const char *want, size_t wlen) {
    s->p++;
    size_t k = 0;
    int equal = want != NULL;
    char u[4];
    for (;;) {
        int n = jchar(s, u);
        if (n < 0) return -1;
        if (n == 0) break;
        if (equal) {
            if (k + (size_t)n > wlen || memcmp(want + k, u, (size_t)n) != 0)
                equal = 0;
            else
                k += (size_t)n;
        }
    }
    s->p++; /* the closing quote */
    return equal && k == wlen;
}

static int jnumber(jscan *s) {
    const char *p = s->p, *end = s->end;
    if (p < end && *p == '-') p++;
    if (p >= end || *p < '0' || *p > '9') return jfail(s, "a malformed number");
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9') p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return jfail(s, "a malformed number");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return jfail(s, "a malformed number");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    s->p = p;
    return 0;
}

static int jliteral(jscan *s, const char *word, size_t n) {
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return jfail(s, "an unexpected character");
    s->p += n;
    return 0;
}

/* Skip one value, validating it, iteratively: at most JSON_MAX_DEPTH levels of nesting. */
static int jskip(jscan *s) {
    char stack[JSON_MAX_DEPTH];
    int depth = 0;
value:
    jws(s);
    if (s->p >= s->end) return jfail(s, "the body ends where a value should be");
    switch (*s->p) {
    case '{':
    case '[':
        if (depth == JSON_MAX_DEPTH) return jfail(s, "nested deeper than " JSON_MAX_DEPTH_TEXT " levels");
        stack[depth++] = *s->p++;
        jws(s);
        if (s->p < s->end && *s->p == (stack[depth - 1] == '{' ? '}' : ']')) {
            s->p++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '[') goto value;
        goto key;
    case '"':
        if (jstring(s, NULL, 0) < 0) return -1;
        goto after;
    case 't':
        if (jliteral(s, "true", 4) < 0) return -1;
        goto after;
    case 'f':
        if (jliteral(s, "false", 5) < 0) return -1;
        goto after;
    case 'n':
        if (jliteral(s, "null", 4) < 0) return -1;
        goto after;
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
            if (jnumber(s) < 0) return -1;
            goto after;
        }
        return jfail(s, "an unexpected character");
    }
key:
    jws(s);
    if (s->p >= s->end) return jfail(s, "the body ends inside an object");
    if (*s->p != '"') return jfail(s, "an object key that is not a string");
    if (jstring(s, NULL, 0) < 0) return -1;
    jws(s);
    if (s->p >= s->end || *s->p != ':') return jfail(s, "a key without ':'");
    s->p++;
    goto value;
after:
    if (depth == 0) return 0;
    jws(s);
    if (s->p >= s->end) return jfail(s, stack[depth - 1] == '{' ? "the body ends inside an object" : "the body ends inside an array");
    if (*s->p == ',') {
        s->p++;
        if (stack[depth - 1] == '{') goto key;
        goto value;
    }
    if (*s->p == (stack[depth - 1] == '{' ? '}' : ']')) {
        s->p++;
        depth--;
        goto after;
    }
    return jfail(s, stack[depth - 1] == '{' ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array");
}

/* On a validated document: where `q` leads (the value's first byte), or NULL if nowhere.
 * A key present twice: the last one counts (as Python's json). */
static const char *jfind(const char *doc, const char *end, const xjson *q) {
    jscan s = {doc, doc, end, NULL};
    jws(&s);
    for (int i = 0; i < q->nparts; i++) {
        const jpart *part = &q->parts[i];
        if (s.p >= end) return NULL;
        if (part->key) {
            if (*s.p != '{') return NULL;
            s.p++;
            const char *found = NULL;
            for (;;) {
                jws(&s);
                if (s.p >= end || *s.p != '"') break; /* '}' */
                int match = jstring(&s, part->key, part->klen);
                if (match < 0) return NULL;
                jws(&s);
                if (s.p >= end || *s.p != ':') return NULL;
                s.p++;
                jws(&s);
                if (match) found = s.p;
                if (jskip(&s) < 0) return NULL;
                jws(&s);
                if (s.p < end && *s.p == ',') s.p++;
                else break;
            }
            if (!found) return NULL;
            s.p = found;
        } else {
            if (*s.p != '[') return NULL;
            const char *open = ++s.p;
            int64_t want = part->index;
            if (want < 0) { /* from the end: count the elements first */
                int64_t count = 0;
                jws(&s);
                if (s.p < end && *s.p != ']')
                    for (;;) {
                        if (jskip(&s) < 0) return NULL;
                        count++;
                        jws(&s);
                        if (s.p < end && *s.p == ',') s.p++;
                        else break;
                    }
                want += count;
                if (want < 0) return NULL;
                s.p = open;
            }
            jws(&s);
            if (s.p >= end || *s.p == ']') return NULL;
            for (int64_t k = 0;; k++) {
                jws(&s);
                if (k == want) break;
                if (jskip(&s) < 0) return NULL;
                jws(&s);
                if (s.p < end && *s.p == ',') s.p++;
                else return NULL;
            }
        }
    }
    jws(&s);
    return s.p < end ? s.p : NULL;
}

/* Whether the value at v equals the expected one (JSON equality: 3 == 3.0, true != 1). */
static int jequal(const char *v, const char *end, const xjson *q) {
    jscan s = {v, v, end, NULL};
    switch (q->type) {
    case J_STR:
        return *v == '"' && jstring(&s, q->s, q->slen) == 1;
    case J_TRUE:
        return end - v >= 4 && memcmp(v, "true", 4) == 0;
    case J_FALSE:
        return end - v >= 5 && memcmp(v, "false", 5) == 0;
    case J_NULL:
        return end - v >= 4 && memcmp(v, "null", 4) == 0;
    default:
        break;
    }
    if (*v != '-' && (*v < '0' || *v > '9')) return 0;
    if (jnumber(&s) < 0) return 0;
    size_t n = (size_t)(s.p - v);
    int integral = memchr(v, '.', n) == NULL && memchr(v, 'e', n) == NULL && memchr(v, 'E', n) == NULL;
    size_t neg = *v == '-';
    if (integral && q->is_int && n - neg <= 18) { /* exactly, like Python's ints */
        int64_t acc = 0;
        for (size_t i = neg; i < n; i++) acc = acc * 10 + (v[i] - '0'); /* 18 digits: no overflow */
        return (neg ? -acc : acc) == q->inum;
    }
    char tmp[400];
    if (n >= sizeof(tmp)) return 0;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    double d = strtod(tmp, NULL);
    if (q->is_int) /* a float against an int: equal only if the float is exactly that integer */
        return fabs(d) < 9e18 && (double)(int64_t)d == d && (int64_t)d == q->inum;
    return d == q->num;
}

/* The JSON fields: the first unmet one in s->fail / s->index, the value found in the detail. */
static void x_json(const expect_t *x, xstate *s) {
    /* an empty body has no buffer: scan "" (NULL + 0 is undefined behaviour) */
    const char *doc = s->buf ? s->buf : "", *stop = doc + s->len;
    jscan v = {doc, doc, stop, NULL};
    if (jskip(&v) == 0) {
        jws(&v);
        if (v.p < v.end) jfail(&v, "more data after the JSON document");
    }
    if (v.err) {
        char msg[DETAIL_MAX];
        int n = snprintf(msg, sizeof(msg), "%s (at byte %zu)", v.err, (size_t)(v.p - v.start));
        s->fail = XF_JSON_INVALID;
        x_detail(s, msg, n < 0 ? 0 : (size_t)n);
        return;
    }
    for (int i = 0; i < x->njson; i++) {
        const xjson *q = &x->json[i];
        const char *at = jfind(doc, stop, q);
        if (!at && q->type == J_ABSENT) continue;
        if (!at) {
            s->fail = XF_JSON_MISSING;
            s->index = i;
            return;
        }
        if (q->type == J_EXISTS) continue;
        if (q->type == J_ABSENT || !jequal(at, stop, q)) { /* J_ABSENT: the value found is the detail */
            jscan end = {at, at, stop, NULL};
            jskip(&end);
            s->fail = XF_JSON_VALUE;
            s->index = i;
            x_detail(s, at, (size_t)(end.p - at));
            return;
        }
    }
}


/* The value of header `xh` in the header block [h, h+len), for the failure's detail. */
static void x_header_value(xstate *s, const xheader *xh, const char *h, size_t len) {
    const char *end = h + len, *p = memchr(h, '\n', len);
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) return;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') ll--;
        const char *colon = memchr(p, ':', ll);
        if (colon && (size_t)(colon - p) == xh->nlen && ieq(p, xh->name, xh->nlen)) {
            const char *v = colon + 1, *ve = p + ll;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            x_detail(s, v, (size_t)(ve - v));
        }
        p = eol;
    }
}

/* Start judging the response to a request of an endpoint with expectations; `evidence`:
 * a failing response may be kept (measured phase; a journey's setup and teardown). */
static void x_begin(Engine *E, conn_t *c, const expect_t *x, int evidence) {
    c->flags |= F_X | (evidence ? F_KEEP : 0);
    size_t i = (size_t)(c - E->conns);
    xstate *s = E->xs[i];
    if (!s) {
        s = malloc(sizeof(xstate));
        if (!s) return; /* judged as failed in x_judge */
        s->buf = NULL;
        s->cap = 0;
        E->xs[i] = s;
    }
    s->fail = XF_OK;
    s->index = 0;
    s->found = 0;
    s->body_len = 0;
    s->needle_found = s->too_large = 0;
    s->carry_len = s->len = s->excerpt_len = s->detail_len = 0;
    s->has_detail = 0;
    s->excerpt = evidence && x->nkept < KEEP_FAILURES;
}

/* The final status and header block are in: judge them; decide whether the body is read. */
static void x_head(Engine *E, conn_t *c, const char *h, size_t len, uint32_t found) {
    const expect_t *x = E->eps[c->ep].x;
    xstate *s = E->xs[c - E->conns];
    if (!s) return;
    if (!x->status_ok[c->status]) {
        s->fail = XF_STATUS;
    } else {
        for (int k = 0; k < x->nheaders; k++) {
            if ((int)((found >> k) & 1u) != (x->headers[k].how == H_ABSENT)) continue; /* met */
            s->fail = XF_HEADER_MISSING;
            s->index = k;
            x_header_value(s, &x->headers[k], h, len);
            if (s->has_detail) s->fail = XF_HEADER_VALUE;
            break;
        }
    }
    if (s->fail ? s->excerpt : (x->body || s->excerpt)) c->flags |= F_XBODY;
}

static inline void x_body(Engine *E, conn_t *c, const char *d, size_t n) {
    xstate *s = E->xs[c - E->conns];
    if (s && n) x_feed(E->eps[c->ep].x, s, d, n);
}

/* A large body buffer goes back once the response is judged (and its values extracted). */
static inline void x_release(Engine *E, conn_t *c) {
    xstate *s = E->xs[c - E->conns];
    if (s && s->cap > XBUF_KEEP) {
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
    }
}

/* Keep a failure as evidence: the response on c (status, body excerpt) and what failed. */
static void x_keep(expect_t *x, const xstate *s, int status, int kind, int what, int index, const char *detail,
                   size_t detail_len) {
    if (x->nkept >= KEEP_FAILURES) return;
    xfail_t *f = &x->kept[x->nkept++];
    f->status = status;
    f->kind = kind;
    f->what = what;
    f->index = index;
    f->body_len = s ? s->body_len : 0;
    f->excerpt_len = s ? s->excerpt_len : 0;
    if (s) memcpy(f->excerpt, s->excerpt_buf, s->excerpt_len);
    f->has_detail = detail != NULL;
    f->detail_len = detail_len < DETAIL_MAX ? detail_len : DETAIL_MAX;
    if (detail) memcpy(f->detail, detail, f->detail_len);
}

/* The response is complete: the error kind it counts as (-1: none), keeping the first
 * failures as evidence when `keep`. An unexpected 4xx/5xx status counts as
 * http_4xx/http_5xx, any other unmet expectation as an assertion failure. */
static int x_judge(Engine *E, endpoint *e, conn_t *c, int keep) {
    expect_t *x = e->x;
    xstate *s = E->xs[c - E->conns];
    int st = c->status;
    if (!s) return E_ASSERT; /* no memory to check it: not a success */
    if (!s->fail) {
        if (x->needle && !s->needle_found)
            s->fail = XF_BODY;
        else if (x->njson && s->too_large)
            s->fail = XF_TOO_LARGE;
        else if (x->njson)
            x_json(x, s);
    }
    if (!s->fail) return -1;
    int kind = s->fail == XF_STATUS && st >= 500 ? E_5XX : (s->fail == XF_STATUS && st >= 400 ? E_4XX : E_ASSERT);
    if (keep && (c->flags & F_KEEP))
        x_keep(x, s, st, kind, s->fail, s->index, s->has_detail ? s->detail : NULL, s->detail_len);
    return kind;
}


/* --- construction of the expectations from Python ------------------------- */

static char *dup_bytes(PyObject *b, size_t *len, const char *what) {
    char *data;
    Py_ssize_t n;
    if (!PyBytes_Check(b)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes", what);
        return NULL;
    }
    PyBytes_AsStringAndSize(b, &data, &n);
    char *out = malloc((size_t)n + 1);
    if (!out) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, data, (size_t)n);
    out[n] = 0;
    *len = (size_t)n;
    return out;
}

static int json_part(PyObject *o, jpart *part) {
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(o, &n);
        if (!u) return -1;
        part->key = malloc((size_t)n + 1);
        if (!part->key) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(part->key, u, (size_t)n + 1);
        part->klen = (size_t)n;
        return 0;
    }
    if (PyLong_Check(o) && !PyBool_Check(o)) {
        long long v = PyLong_AsLongLong(o);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v > (1LL << 40) || v < -(1LL << 40)) {
            PyErr_SetString(PyExc_ValueError, "a JSON path index is out of range");
            return -1;
        }
        part->index = v;
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "a JSON path step is a key (str) or an index (int)");
    return -1;
}

static int json_value(PyObject *o, xjson *q) {
    if (o == Py_None) {
        q->type = J_NULL;
    } else if (PyBool_Check(o)) {
        q->type = o == Py_True ? J_TRUE : J_FALSE;
    } else if (PyLong_Check(o)) {
        q->type = J_NUM;
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return -1;
        q->num = PyLong_AsDouble(o);
        if (q->num == -1.0 && PyErr_Occurred()) return -1;
        q->is_int = !overflow && v > -1000000000000000000LL && v < 1000000000000000000LL;
        q->inum = v;
    } else if (PyFloat_Check(o)) {
        q->type = J_NUM;
        q->num = PyFloat_AsDouble(o);
        if (!isfinite(q->num)) {
            PyErr_SetString(PyExc_ValueError, "an expected JSON number must be finite");
            return -1;
        }
        if (q->num == floor(q->num) && fabs(q->num) < 1e18) {
            q->is_int = 1;
            q->inum = (int64_t)q->num;
        }
    } else if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(o, &n);
        if (!u) return -1;
        q->type = J_STR;
        q->s = malloc((size_t)n + 1);
        if (!q->s) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(q->s, u, (size_t)n + 1);
        q->slen = (size_t)n;
    } else {
        PyErr_SetString(PyExc_TypeError, "an expected JSON value is a str, int, float, bool or None");
        return -1;
    }
    return 0;
}

/* (statuses, ((name, text), ...), body_contains or None, ((path steps, value), ...), max_body) */
static int expect_parse(PyObject *o, int head, expect_t **out) {
    PyObject *statuses, *headers, *needle, *json;
    long long max_body;
    *out = NULL;
    if (!PyArg_ParseTuple(o, "OOOOL;an expectation is (statuses, headers, body_contains, json, max_body)",
                          &statuses, &headers, &needle, &json, &max_body))
        return -1;
    expect_t *x = calloc(1, sizeof(expect_t));
    if (!x) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *st = NULL, *hs = NULL, *js = NULL;
    if (!(st = PySequence_Fast(statuses, "statuses must be a sequence")) ||
        !(hs = PySequence_Fast(headers, "headers must be a sequence")) ||
        !(js = PySequence_Fast(json, "json must be a sequence")))
        goto fail;
    if (PySequence_Fast_GET_SIZE(st) == 0) {
        for (int i = 200; i < 300; i++) x->status_ok[i] = 1;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(st); i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(st, i));
        if (v == -1 && PyErr_Occurred()) goto fail;
        if (v < 100 || v > 599) {
            PyErr_SetString(PyExc_ValueError, "an expected status is between 100 and 599");
            goto fail;
        }
        x->status_ok[v] = 1;
    }
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(hs), nj = PySequence_Fast_GET_SIZE(js);
    if (nh > MAX_XHEADERS || nj > MAX_XJSON) {
        PyErr_Format(PyExc_ValueError, "at most %d expected headers and %d JSON fields per request", MAX_XHEADERS,
                     MAX_XJSON);
        goto fail;
    }
    x->headers = xcalloc((size_t)nh, sizeof(xheader));
    x->json = xcalloc((size_t)nj, sizeof(xjson));
    if (!x->headers || !x->json) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *name, *text;
        int how = H_CONTAINS;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(hs, i), "OO|i;an expected header is (name, text[, how])", &name,
                              &text, &how))
            goto fail;
        if (how < H_CONTAINS || how > H_ABSENT) {
            PyErr_SetString(PyExc_ValueError, "an expected header's how is 0 (contains), 1 (equals) or 2 (absent)");
            goto fail;
        }
        xheader *xh = &x->headers[x->nheaders++];
        xh->how = how;
        if (!(xh->name = dup_bytes(name, &xh->nlen, "a header name")) ||
            !(xh->needle = dup_bytes(text, &xh->len, "a header's expected text")))
            goto fail;
        for (size_t k = 0; k < xh->nlen; k++)
            if (xh->name[k] >= 'A' && xh->name[k] <= 'Z') xh->name[k] = (char)(xh->name[k] + 32);
        if (xh->len > NEEDLE_MAX) {
            PyErr_Format(PyExc_ValueError, "an expected header text is at most %d bytes", NEEDLE_MAX);
            goto fail;
        }
    }
    if (needle != Py_None) {
        if (!(x->needle = dup_bytes(needle, &x->nlen, "body_contains"))) goto fail;
        if (x->nlen < 1 || x->nlen > NEEDLE_MAX) {
            PyErr_Format(PyExc_ValueError, "body_contains is 1 to %d bytes", NEEDLE_MAX);
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < nj; i++) {
        PyObject *steps, *value;
        int how = 0; /* 0: equal to value, 1: exists, 2: absent */
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(js, i), "OO|i;a JSON field is (path steps, value[, how])", &steps,
                              &value, &how))
            goto fail;
        if (how < 0 || how > 2) {
            PyErr_SetString(PyExc_ValueError, "a JSON field's how is 0 (equals), 1 (exists) or 2 (absent)");
            goto fail;
        }
        xjson *q = &x->json[x->njson++];
        PyObject *ps = PySequence_Fast(steps, "a JSON path is a sequence of steps");
        if (!ps) goto fail;
        Py_ssize_t np = PySequence_Fast_GET_SIZE(ps);
        if (np > MAX_JPARTS) {
            Py_DECREF(ps);
            PyErr_Format(PyExc_ValueError, "a JSON path has at most %d steps", MAX_JPARTS);
            goto fail;
        }
        q->parts = xcalloc((size_t)np, sizeof(jpart));
        if (!q->parts) {
            Py_DECREF(ps);
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t k = 0; k < np; k++) {
            if (json_part(PySequence_Fast_GET_ITEM(ps, k), &q->parts[q->nparts++]) < 0) {
                Py_DECREF(ps);
                goto fail;
            }
        }
        Py_DECREF(ps);
        if (how)
            q->type = how == 1 ? J_EXISTS : J_ABSENT;
        else if (json_value(value, q) < 0)
            goto fail;
    }
    if (x->njson && (max_body < 1 || max_body > MAX_BODY_LIMIT)) {
        PyErr_Format(PyExc_ValueError, "max_body is 1 byte to %lld bytes", (long long)MAX_BODY_LIMIT);
        goto fail;
    }
    x->max_body = (size_t)max_body;
    x->body = x->needle != NULL || x->njson > 0;
    x->buffer = x->njson > 0;
    if (head && x->body) {
        PyErr_SetString(PyExc_ValueError, "a HEAD request has no body to check");
        goto fail;
    }
    Py_DECREF(st);
    Py_DECREF(hs);
    Py_DECREF(js);
    *out = x;
    return 0;
fail:
    Py_XDECREF(st);
    Py_XDECREF(hs);
    Py_XDECREF(js);
    expect_free(x);
    return -1;
}

/* The kept failures: [(status, error kind, what, index, body bytes, excerpt, detail or None)] */
static PyObject *failures_list(const expect_t *x) {
    PyObject *list = PyList_New(0);
    if (!list || !x) return list;
    for (int i = 0; i < x->nkept; i++) {
        const xfail_t *f = &x->kept[i];
        PyObject *detail = f->has_detail ? PyBytes_FromStringAndSize(f->detail, (Py_ssize_t)f->detail_len)
                                         : (Py_INCREF(Py_None), Py_None);
        PyObject *t = detail ? Py_BuildValue("(issiLy#N)", f->status, ERROR_KINDS[f->kind], X_KINDS[f->what], f->index,
                                             (long long)f->body_len, f->excerpt, (Py_ssize_t)f->excerpt_len, detail)
                             : NULL;
        if (!t || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(t);
    }
    return list;
}

/* ------------------------------------------------------------------------- */
/* Journey programs: data, construction, request templates, extraction       */
/* ------------------------------------------------------------------------- */

/* In program mode the engine runs journeys: per virtual user, steps in order, each an
 * endpoint (counters, histograms, statuses, expect) whose request is built per send from
 * its template and the user's variables, values extracted from responses into variables.
 * Everything that comes from the server is bounded: an extracted value is at most
 * MAX_VALUE bytes, the header block kept for extraction and cookies at most MAX_HEAD, a
 * body kept for extraction at most the step's max_body, cookies MAX_COOKIES of at most
 * COOKIE_MAX bytes each. */

#define MAX_SLOTS 256
#define MAX_VALUE (64 * 1024)
#define MAX_COOKIES 64
#define COOKIE_MAX 4096
#define WHY_MAX 160

enum { EX_JSON, EX_HEADER, EX_REGEX, EX_STATUS, EX_JSON_VALUE }; /* EX_JSON_VALUE: the JSON text as written */
enum { ENC_RAW, ENC_PERCENT, ENC_JSON, ENC_BASE64 }; /* ENC_BASE64: RFC 4648, padded (Basic credentials) */
enum { U_FREE, U_SETUP, U_ITER, U_TEARDOWN, U_DONE, U_TEARDOWN_WAIT };

typedef struct {
    uint8_t var, enc; /* var: a slot's value (enc: ENC_*), else a literal */
    uint32_t slot;
    size_t off, len; /* literal: in the step's `lit` */
} tpart;

typedef struct {
    uint32_t slot;
    int kind;
    jpart *parts; /* EX_JSON */
    int nparts;
    char *what;  /* the path, header name or regex, for messages */
    char *name;  /* EX_HEADER: lowercase */
    size_t nlen;
    regex_t re; /* EX_REGEX */
    int has_re;
} extract_t;

typedef struct {
    tpart *head, *body;
    int nhead, nbody, has_body;
    char *lit;
    size_t litlen;
    int body_vars; /* 0: the body is constant, sent from lit without copying */
    size_t cbody_off, cbody_len;
    extract_t *ex;
    int nex;
    int poll;
    int64_t poll_every_ns, poll_for_ns;
    int64_t think_ns, timeout_ns; /* timeout_ns 0: the engine's */
    int cookies;
    int need_head; /* header extraction or cookies: the response's header block is kept */
} pstep_t;

typedef struct {
    uint64_t started, completed, passed, failed, failed_setup;
} jcount;

typedef struct {
    uint32_t *steps;
    uint32_t nsteps;
    int64_t weight;
    uint64_t count; /* iterations started by this engine: the iteration variable */
    jcount k[2];
    uint64_t *failed_by_step; /* measured phase, by position in `steps` */
    uint64_t *hcorr, *hunc;   /* passed iterations of the measured phase, L_MAIN layout */
} pjourney_t;

typedef struct program_s {
    int nslots, uuid_slot, iter_slot, user_slot;
    int user_uuid_slot; /* a UUID drawn before each setup attempt of a user, kept by its iterations */
    uint64_t user_offset;
    uint64_t iter_offset, iter_stride; /* workers: this one's iterations are offset+1, offset+1+stride, ... */
    int setup_attempts;                /* closed model: a user's setup attempts before it gives up */
    char **names;
    uint32_t ninit;
    uint32_t *init_slot;
    char **init_val;
    size_t *init_len;
    pstep_t *steps;
    uint32_t nsteps;
    pjourney_t *journeys;
    uint32_t njourneys;
    wrr_t mix;
    uint32_t *setup, *teardown;
    uint32_t nsetup, nteardown;
    int cookies; /* some step keeps cookies */
    /* derived slots: a slot whose value is its parts (literals, other slots encoded), made
     * again before each send of a step that uses it (`user:password` for Basic credentials) */
    pstep_t *derived; /* only lit and head/nhead (the parts) are used */
    uint32_t *derived_slot;
    uint32_t nderived;
    int16_t derived_of[MAX_SLOTS]; /* slot -> index in derived, or -1 */
} program_t;

typedef struct {
    char *p;
    uint32_t len, cap;
    uint8_t set;
} vval;

typedef struct {
    vval kv[MAX_COOKIES]; /* "name=value" */
    uint16_t nlen[MAX_COOKIES];
    int n;
} jar_t;

typedef struct vuser_s {
    uint8_t mode, setup_done, polling, timer_iter; /* timer_iter: the pending timer starts an iteration */
    uint8_t phase;                                /* of the current iteration (setup, teardown: warm-up) */
    uint32_t journey;
    const uint32_t *list; /* the steps being run: setup, a journey's, teardown */
    uint32_t nlist, pos;
    int64_t intended, started;   /* the iteration's intended and actual start */
    int64_t step_sent, step_int; /* the current step's first send and intended time (polls) */
    int64_t poll_until, teardown_until, tmo_ns;
    int64_t pending;     /* open model: the arrival waiting for this user's setup */
    uint8_t pending_phase, setup_attempts; /* setup_attempts: the failed ones so far */
    uint32_t pending_journey;
    vval *cur, *base; /* variables: this iteration's, and what each iteration starts from */
    jar_t *jar, *jar_base;
    char *req; /* the request being sent: head and, unless constant, body */
    size_t reqlen, reqcap;
    const char *seg2; /* a constant body sent after req, without copying */
    size_t seg2len;
    char *hdr; /* the last response's header block, for steps that need it */
    size_t hdrlen, hdrcap;
} vuser_t;

static int vval_set(vval *v, const char *d, size_t n) {
    if (n + 1 > v->cap) {
        size_t ncap = v->cap ? v->cap : 32;
        while (ncap < n + 1) ncap *= 2;
        char *p = realloc(v->p, ncap);
        if (!p) return -1;
        v->p = p;
        v->cap = (uint32_t)ncap;
    }
    if (n) memcpy(v->p, d, n);
    v->len = (uint32_t)n;
    v->set = 1;
    return 0;
}

static void pstep_free(pstep_t *st) {
    free(st->head);
    free(st->body);
    free(st->lit);
    for (int i = 0; i < st->nex; i++) {
        extract_t *x = &st->ex[i];
        for (int k = 0; k < x->nparts; k++) free(x->parts[k].key);
        free(x->parts);
        free(x->what);
        free(x->name);
        if (x->has_re) regfree(&x->re);
    }
    free(st->ex);
}

static void program_free(program_t *P) {
    if (!P) return;
    if (P->names)
        for (int i = 0; i < P->nslots; i++) free(P->names[i]);
    free(P->names);
    for (uint32_t i = 0; i < P->ninit; i++) free(P->init_val[i]);
    free(P->init_slot);
    free(P->init_val);
    free(P->init_len);
    if (P->steps)
        for (uint32_t i = 0; i < P->nsteps; i++) pstep_free(&P->steps[i]);
    free(P->steps);
    if (P->journeys)
        for (uint32_t i = 0; i < P->njourneys; i++) {
            free(P->journeys[i].steps);
            free(P->journeys[i].failed_by_step);
            free(P->journeys[i].hcorr);
            free(P->journeys[i].hunc);
        }
    free(P->journeys);
    wrr_free(&P->mix);
    free(P->setup);
    free(P->teardown);
    if (P->derived)
        for (uint32_t i = 0; i < P->nderived; i++) pstep_free(&P->derived[i]);
    free(P->derived);
    free(P->derived_slot);
    free(P);
}

/* --- construction from Python ------------------------------------------------ */

static PyObject *dict_item(PyObject *d, const char *key, int required, const char *where) {
    PyObject *v = PyDict_GetItemString(d, key); /* borrowed */
    if (!v && required) PyErr_Format(PyExc_ValueError, "%s: missing '%s'", where, key);
    return v;
}

static int slot_index(PyObject *o, const program_t *P, int allow_none, int *out, const char *what) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if ((allow_none && v == -1) || (v >= 0 && v < P->nslots)) {
        *out = (int)v;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "program: %s: slot %ld is not between 0 and %d", what, v, P->nslots - 1);
    return -1;
}

static const char *slot_name(const program_t *P, uint32_t slot, char tmp[24]) {
    if (P->names && P->names[slot]) return P->names[slot];
    snprintf(tmp, 24, "slot %u", slot);
    return tmp;
}

static int lit_append(pstep_t *st, size_t *cap, const char *d, size_t n, size_t *off) {
    if (st->litlen + n > *cap) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap < st->litlen + n) ncap *= 2;
        char *p = realloc(st->lit, ncap);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        st->lit = p;
        *cap = ncap;
    }
    *off = st->litlen;
    if (n) memcpy(st->lit + st->litlen, d, n);
    st->litlen += n;
    return 0;
}

/* [PART, ...]: bytes, or (slot, encoding) */
static int parse_parts(PyObject *o, const program_t *P, pstep_t *st, size_t *cap, tpart **out, int *nout,
                       const char *where) {
    PyObject *seq = PySequence_Fast(o, "a template is a sequence of parts");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    *out = xcalloc((size_t)n, sizeof(tpart));
    if (!*out) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        tpart *tp = &(*out)[(*nout)++];
        if (PyBytes_Check(it)) {
            if (lit_append(st, cap, PyBytes_AS_STRING(it), (size_t)PyBytes_GET_SIZE(it), &tp->off) < 0) goto fail;
            tp->len = (size_t)PyBytes_GET_SIZE(it);
            continue;
        }
        int slot, enc;
        PyObject *so;
        if (!PyTuple_Check(it) || !PyArg_ParseTuple(it, "Oi", &so, &enc)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: a part is bytes or (slot, encoding)", where);
            goto fail;
        }
        if (slot_index(so, P, 0, &slot, where) < 0) goto fail;
        if (enc < ENC_RAW || enc > ENC_BASE64) {
            PyErr_Format(PyExc_ValueError,
                         "%s: encoding %d is not 0 (raw), 1 (percent), 2 (JSON string) or 3 (base64)", where, enc);
            goto fail;
        }
        tp->var = 1;
        tp->slot = (uint32_t)slot;
        tp->enc = (uint8_t)enc;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static int parse_extract(PyObject *o, const program_t *P, extract_t *x, const char *where) {
    PyObject *seq = PySequence_Fast(o, "an extraction is (slot, kind, ...)");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int slot, rc = -1;
    const char *kind;
    if (n < 2 || !PyUnicode_Check(PySequence_Fast_GET_ITEM(seq, 1))) {
        PyErr_Format(PyExc_ValueError, "%s: an extraction is (slot, kind, argument)", where);
        goto out;
    }
    if (slot_index(PySequence_Fast_GET_ITEM(seq, 0), P, 0, &slot, where) < 0) goto out;
    x->slot = (uint32_t)slot;
    kind = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, 1));
    if (!kind) goto out;
    PyObject *arg = n > 2 ? PySequence_Fast_GET_ITEM(seq, 2) : NULL;
    if (strcmp(kind, "status") == 0) {
        x->kind = EX_STATUS;
        x->what = strdup("status");
        rc = x->what ? 0 : (PyErr_NoMemory(), -1);
        goto out;
    }
    if (!arg) {
        PyErr_Format(PyExc_ValueError, "%s: extraction '%s' needs an argument", where, kind);
        goto out;
    }
    if (strcmp(kind, "json") == 0 || strcmp(kind, "json_value") == 0) {
        x->kind = kind[4] ? EX_JSON_VALUE : EX_JSON;
        PyObject *ps = PySequence_Fast(arg, "a JSON path is a sequence of steps");
        if (!ps) goto out;
        Py_ssize_t np = PySequence_Fast_GET_SIZE(ps);
        char text[512];
        size_t tl = 1;
        text[0] = '$';
        x->parts = np > MAX_JPARTS ? NULL : xcalloc((size_t)np, sizeof(jpart));
        if (!x->parts) {
            Py_DECREF(ps);
            if (np > MAX_JPARTS)
                PyErr_Format(PyExc_ValueError, "%s: a JSON path has at most %d steps", where, MAX_JPARTS);
            else
                PyErr_NoMemory();
            goto out;
        }
        for (Py_ssize_t k = 0; k < np; k++) {
            jpart *part = &x->parts[x->nparts++];
            if (json_part(PySequence_Fast_GET_ITEM(ps, k), part) < 0) {
                Py_DECREF(ps);
                goto out;
            }
            int w = part->key ? snprintf(text + tl, sizeof(text) - tl, ".%s", part->key)
                              : snprintf(text + tl, sizeof(text) - tl, "[%lld]", (long long)part->index);
            if (w > 0) tl = tl + (size_t)w < sizeof(text) ? tl + (size_t)w : sizeof(text) - 1;
        }
        Py_DECREF(ps);
        x->what = strdup(text);
        rc = x->what ? 0 : (PyErr_NoMemory(), -1);
        goto out;
    }
    if (strcmp(kind, "header") == 0 || strcmp(kind, "regex") == 0) {
        Py_ssize_t al;
        const char *a = PyUnicode_Check(arg) ? PyUnicode_AsUTF8AndSize(arg, &al) : NULL;
        if (!a) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s: extraction '%s' takes a str", where, kind);
            goto out;
        }
        x->what = strdup(a);
        if (!x->what) {
            PyErr_NoMemory();
            goto out;
        }
        if (kind[0] == 'h') {
            x->kind = EX_HEADER;
            x->name = strdup(a);
            if (!x->name || al < 1) {
                if (x->name) PyErr_Format(PyExc_ValueError, "%s: an empty header name", where);
                else PyErr_NoMemory();
                goto out;
            }
            x->nlen = (size_t)al;
            for (size_t k = 0; k < x->nlen; k++)
                if (x->name[k] >= 'A' && x->name[k] <= 'Z') x->name[k] = (char)(x->name[k] + 32);
            rc = 0;
            goto out;
        }
        x->kind = EX_REGEX;
        int e = regcomp(&x->re, a, REG_EXTENDED);
        if (e) {
            char msg[160];
            regerror(e, &x->re, msg, sizeof(msg));
            PyErr_Format(PyExc_ValueError, "%s: the regex '%s' does not compile: %s", where, a, msg);
            goto out;
        }
        x->has_re = 1;
        rc = 0;
        goto out;
    }
    PyErr_Format(PyExc_ValueError, "%s: extraction kind '%s' is not json, json_value, header, regex or status",
                 where, kind);
out:
    Py_DECREF(seq);
    return rc;
}

static int parse_step_list(PyObject *o, const program_t *P, uint32_t **out, uint32_t *n, const char *where) {
    PyObject *seq = PySequence_Fast(o, "a step list is a sequence of step indexes");
    if (!seq) return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    *out = xcalloc((size_t)k, sizeof(uint32_t));
    if (!*out) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (v < 0 || v >= (long)P->nsteps) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "program: %s: step %ld does not exist (%u steps)", where, v, P->nsteps);
            return -1;
        }
        (*out)[i] = (uint32_t)v;
    }
    *n = (uint32_t)k;
    Py_DECREF(seq);
    return 0;
}

static int parse_seconds(PyObject *o, double *out, const char *where, const char *what) {
    *out = PyFloat_AsDouble(o);
    if (*out == -1.0 && PyErr_Occurred()) return -1;
    if (!(*out >= 0) || *out > 86400.0 * 365) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be seconds >= 0", where, what);
        return -1;
    }
    return 0;
}

/* derived: [(slot, [PART, ...]), ...]; a part names no derived slot (one level: each is made
 * from set variables only, before the send of a step that uses it). */
static int parse_derived(PyObject *o, program_t *P) {
    PyObject *seq = PySequence_Fast(o, "derived is a sequence of (slot, [parts])");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_SLOTS) {
        PyErr_Format(PyExc_ValueError, "program: derived: at most %d", MAX_SLOTS);
        goto fail;
    }
    P->derived = xcalloc((size_t)n + 1, sizeof(pstep_t));
    P->derived_slot = xcalloc((size_t)n + 1, sizeof(uint32_t));
    if (!P->derived || !P->derived_slot) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) { /* every derived slot first: parts may not name one */
        PyObject *so, *parts;
        int slot;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "OO;a derived slot is (slot, [parts])", &so, &parts) ||
            slot_index(so, P, 0, &slot, "derived") < 0)
            goto fail;
        if (P->derived_of[slot] >= 0) {
            PyErr_Format(PyExc_ValueError, "program: derived: slot %d twice", slot);
            goto fail;
        }
        P->derived_of[slot] = (int16_t)i;
        P->derived_slot[i] = (uint32_t)slot;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        pstep_t *d = &P->derived[P->nderived++];
        size_t cap = 0;
        PyObject *parts = PySequence_Fast_GET_ITEM(PySequence_Fast_GET_ITEM(seq, i), 1);
        if (parse_parts(parts, P, d, &cap, &d->head, &d->nhead, "program: derived") < 0) goto fail;
        for (int k = 0; k < d->nhead; k++)
            if (d->head[k].var && P->derived_of[d->head[k].slot] >= 0) {
                PyErr_SetString(PyExc_ValueError, "program: derived: a part names a derived slot");
                goto fail;
            }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static int parse_step(PyObject *d, const program_t *P, pstep_t *st, uint32_t index) {
    char where[48];
    snprintf(where, sizeof(where), "program: step %u", index);
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "%s is not a dict", where);
        return -1;
    }
    size_t cap = 0;
    PyObject *head = dict_item(d, "head", 1, where);
    if (!head || parse_parts(head, P, st, &cap, &st->head, &st->nhead, where) < 0) return -1;
    if (st->nhead < 1 || st->head[0].var || st->head[0].len < 4) {
        PyErr_Format(PyExc_ValueError, "%s: the head starts with the request line's literal text", where);
        return -1;
    }
    PyObject *body = dict_item(d, "body", 0, where);
    if (body && body != Py_None) {
        st->has_body = 1;
        if (parse_parts(body, P, st, &cap, &st->body, &st->nbody, where) < 0) return -1;
        for (int i = 0; i < st->nbody; i++) st->body_vars |= st->body[i].var;
        if (!st->body_vars) { /* constant: one literal run, sent from lit as is */
            st->cbody_off = st->nbody ? st->body[0].off : 0;
            for (int i = 0; i < st->nbody; i++) st->cbody_len += st->body[i].len;
        }
    }
    PyObject *ex = dict_item(d, "extract", 0, where);
    if (ex && ex != Py_None) {
        PyObject *seq = PySequence_Fast(ex, "extract is a sequence");
        if (!seq) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        st->ex = xcalloc((size_t)n, sizeof(extract_t));
        if (!st->ex) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (parse_extract(PySequence_Fast_GET_ITEM(seq, i), P, &st->ex[st->nex++], where) < 0) {
                Py_DECREF(seq);
                return -1;
            }
            if (st->ex[i].kind == EX_HEADER) st->need_head = 1;
        }
        Py_DECREF(seq);
    }
    PyObject *poll = dict_item(d, "poll", 0, where);
    if (poll && poll != Py_None) {
        double every, within;
        if (!PyArg_ParseTuple(poll, "dd;poll is (interval_s, timeout_s)", &every, &within)) return -1;
        if (!(every > 0) || !(within > 0) || within > 86400) {
            PyErr_Format(PyExc_ValueError, "%s: poll interval and timeout must be > 0", where);
            return -1;
        }
        st->poll = 1;
        st->poll_every_ns = (int64_t)(every * 1e9);
        st->poll_for_ns = (int64_t)(within * 1e9);
    }
    PyObject *think = dict_item(d, "think", 0, where);
    if (think && think != Py_None) {
        double t;
        if (parse_seconds(think, &t, where, "think") < 0) return -1;
        st->think_ns = (int64_t)(t * 1e9);
    }
    PyObject *tmo = dict_item(d, "timeout", 0, where);
    if (tmo && tmo != Py_None) {
        double t;
        if (parse_seconds(tmo, &t, where, "timeout") < 0) return -1;
        if (!(t > 0)) {
            PyErr_Format(PyExc_ValueError, "%s: timeout must be > 0", where);
            return -1;
        }
        st->timeout_ns = (int64_t)(t * 1e9);
    }
    PyObject *ck = dict_item(d, "cookies", 0, where);
    if (ck) {
        int t = PyObject_IsTrue(ck);
        if (t < 0) return -1;
        st->cookies = t;
        if (t) st->need_head = 1;
    }
    return 0;
}

/* A step's expectation: as given, or (None) a response below 400 passes, as without
 * `expect`. Extraction from the body keeps the body (up to max_body). */
static int step_expect(PyObject *given, const pstep_t *st, int head, expect_t **out) {
    if (given && given != Py_None) {
        if (expect_parse(given, head, out) < 0) return -1;
    } else {
        expect_t *x = calloc(1, sizeof(expect_t));
        if (!x) {
            PyErr_NoMemory();
            return -1;
        }
        for (int i = 100; i < 400; i++) x->status_ok[i] = 1;
        x->headers = xcalloc(1, sizeof(xheader));
        x->json = xcalloc(1, sizeof(xjson));
        x->max_body = 1 << 20;
        *out = x;
        if (!x->headers || !x->json) {
            PyErr_NoMemory();
            return -1;
        }
    }
    expect_t *x = *out;
    for (int i = 0; i < st->nex; i++)
        if (st->ex[i].kind == EX_JSON || st->ex[i].kind == EX_JSON_VALUE || st->ex[i].kind == EX_REGEX) {
            x->body = x->buffer = 1;
            if (x->max_body < 1 || x->max_body > MAX_BODY_LIMIT) x->max_body = 1 << 20;
        }
    if (head && x->body) {
        PyErr_SetString(PyExc_ValueError, "program: a HEAD request has no body to extract from");
        return -1;
    }
    return 0;
}

/* Engine(program=...): the steps become the endpoints. */
static int program_parse(Engine *E, PyObject *prog, PyObject *expects, uint64_t seq_offset) {
    const char *where = "program";
    if (!PyDict_Check(prog)) {
        PyErr_SetString(PyExc_TypeError, "program must be a dict");
        return -1;
    }
    program_t *P = calloc(1, sizeof(program_t));
    if (!P) {
        PyErr_NoMemory();
        return -1;
    }
    E->prog = P;
    PyObject *o;
    int64_t *w = NULL;
    PyObject *xq = NULL, *seq = NULL;
    if (!(o = dict_item(prog, "slots", 1, where))) return -1;
    long ns = PyLong_AsLong(o);
    if (ns == -1 && PyErr_Occurred()) return -1;
    if (ns < 0 || ns > MAX_SLOTS) {
        PyErr_Format(PyExc_ValueError, "program: slots must be 0 to %d", MAX_SLOTS);
        return -1;
    }
    P->nslots = (int)ns;
    P->uuid_slot = P->iter_slot = P->user_slot = P->user_uuid_slot = -1;
    if ((o = dict_item(prog, "uuid_slot", 0, where)) && slot_index(o, P, 1, &P->uuid_slot, "uuid_slot") < 0) return -1;
    if ((o = dict_item(prog, "user_uuid_slot", 0, where)) &&
        slot_index(o, P, 1, &P->user_uuid_slot, "user_uuid_slot") < 0)
        return -1;
    if ((o = dict_item(prog, "iteration_slot", 0, where)) && slot_index(o, P, 1, &P->iter_slot, "iteration_slot") < 0)
        return -1;
    if ((o = dict_item(prog, "user_slot", 0, where)) && slot_index(o, P, 1, &P->user_slot, "user_slot") < 0) return -1;
    if ((o = dict_item(prog, "user_offset", 0, where))) {
        P->user_offset = PyLong_AsUnsignedLongLong(o);
        if (PyErr_Occurred()) return -1;
    }
    P->iter_stride = 1;
    if ((o = dict_item(prog, "iteration_offset", 0, where))) {
        P->iter_offset = PyLong_AsUnsignedLongLong(o);
        if (PyErr_Occurred()) return -1;
    }
    if ((o = dict_item(prog, "iteration_stride", 0, where))) {
        P->iter_stride = PyLong_AsUnsignedLongLong(o);
        if (PyErr_Occurred()) return -1;
        if (P->iter_stride < 1 || P->iter_stride > MAX_ENDPOINTS || P->iter_offset >= P->iter_stride) {
            PyErr_SetString(PyExc_ValueError, "program: iteration_stride is 1 to 4096, iteration_offset below it");
            return -1;
        }
    }
    P->setup_attempts = 5;
    if ((o = dict_item(prog, "setup_attempts", 0, where))) {
        long n = PyLong_AsLong(o);
        if (n == -1 && PyErr_Occurred()) return -1;
        if (n < 1 || n > 100) {
            PyErr_SetString(PyExc_ValueError, "program: setup_attempts is 1 to 100");
            return -1;
        }
        P->setup_attempts = (int)n;
    }
    if ((o = dict_item(prog, "names", 0, where)) && o != Py_None) {
        if (!(seq = PySequence_Fast(o, "names is a sequence of str"))) return -1;
        if (PySequence_Fast_GET_SIZE(seq) != P->nslots) {
            PyErr_SetString(PyExc_ValueError, "program: names: one per slot");
            goto fail;
        }
        P->names = xcalloc((size_t)P->nslots, sizeof(char *));
        if (!P->names) goto nomem;
        for (int i = 0; i < P->nslots; i++) {
            const char *u = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
            if (!u) goto fail;
            if (!(P->names[i] = strdup(u))) goto nomem;
        }
        Py_CLEAR(seq);
    }
    if ((o = dict_item(prog, "initial", 0, where)) && o != Py_None) {
        if (!(seq = PySequence_Fast(o, "initial is a sequence of (slot, bytes)"))) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        P->init_slot = xcalloc((size_t)n, sizeof(uint32_t));
        P->init_val = xcalloc((size_t)n, sizeof(char *));
        P->init_len = xcalloc((size_t)n, sizeof(size_t));
        if (!P->init_slot || !P->init_val || !P->init_len) goto nomem;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *so, *val;
            int slot;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "OO;an initial value is (slot, bytes)", &so, &val))
                goto fail;
            if (slot_index(so, P, 0, &slot, "initial") < 0) goto fail;
            P->init_slot[P->ninit] = (uint32_t)slot;
            if (!(P->init_val[P->ninit] = dup_bytes(val, &P->init_len[P->ninit], "an initial value"))) goto fail;
            P->ninit++;
            if (P->init_len[P->ninit - 1] > MAX_VALUE) {
                PyErr_Format(PyExc_ValueError, "program: initial: a value is at most %d bytes", MAX_VALUE);
                goto fail;
            }
        }
        Py_CLEAR(seq);
    }
    for (int i = 0; i < MAX_SLOTS; i++) P->derived_of[i] = -1;
    if ((o = dict_item(prog, "derived", 0, where)) && o != Py_None && parse_derived(o, P) < 0) return -1;
    if (!(o = dict_item(prog, "steps", 1, where))) return -1;
    if (!(seq = PySequence_Fast(o, "steps is a sequence of dicts"))) return -1;
    Py_ssize_t nst = PySequence_Fast_GET_SIZE(seq);
    if (nst < 1 || nst > MAX_ENDPOINTS) {
        PyErr_Format(PyExc_ValueError, "program: 1 to %d steps", MAX_ENDPOINTS);
        goto fail;
    }
    if (expects != Py_None) {
        if (!(xq = PySequence_Fast(expects, "expects must be a sequence (None or an expectation per step)"))) goto fail;
        if (PySequence_Fast_GET_SIZE(xq) != nst) {
            PyErr_SetString(PyExc_ValueError, "expects: one item (None or an expectation) per step");
            goto fail;
        }
    }
    P->nsteps = (uint32_t)nst;
    P->steps = xcalloc((size_t)nst, sizeof(pstep_t));
    E->nep = (uint32_t)nst;
    E->eps = xcalloc((size_t)nst, sizeof(endpoint));
    if (!P->steps || !E->eps) goto nomem;
    for (Py_ssize_t i = 0; i < nst; i++) {
        pstep_t *st = &P->steps[i];
        endpoint *e = &E->eps[i];
        if (parse_step(PySequence_Fast_GET_ITEM(seq, i), P, st, (uint32_t)i) < 0) goto fail;
        P->cookies |= st->cookies;
        e->head = memcmp(st->lit + st->head[0].off, "HEAD ", 5) == 0;
        e->status[0] = xcalloc(NSTATUS, sizeof(uint64_t));
        e->status[1] = xcalloc(NSTATUS, sizeof(uint64_t));
        e->hcorr = xcalloc((size_t)L_MAIN.counts_len, sizeof(uint64_t));
        e->hunc = xcalloc((size_t)L_MAIN.counts_len, sizeof(uint64_t));
        if (!e->status[0] || !e->status[1] || !e->hcorr || !e->hunc) goto nomem;
        if (step_expect(xq ? PySequence_Fast_GET_ITEM(xq, i) : NULL, st, e->head, &e->x) < 0) goto fail;
    }
    Py_CLEAR(seq);
    if (!(o = dict_item(prog, "journeys", 1, where))) goto fail;
    if (!(seq = PySequence_Fast(o, "journeys is a sequence of (weight, [step indexes])"))) goto fail;
    Py_ssize_t nj = PySequence_Fast_GET_SIZE(seq);
    if (nj < 1 || nj > MAX_ENDPOINTS) {
        PyErr_Format(PyExc_ValueError, "program: 1 to %d journeys", MAX_ENDPOINTS);
        goto fail;
    }
    P->njourneys = (uint32_t)nj;
    P->journeys = xcalloc((size_t)nj, sizeof(pjourney_t));
    w = xcalloc((size_t)nj, sizeof(int64_t));
    if (!P->journeys || !w) goto nomem;
    for (Py_ssize_t i = 0; i < nj; i++) {
        pjourney_t *J = &P->journeys[i];
        PyObject *steps;
        long long weight;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "LO;a journey is (weight, [step indexes])", &weight,
                              &steps))
            goto fail;
        if (weight < 1 || weight > (1LL << 40)) {
            PyErr_SetString(PyExc_ValueError, "program: journey weights must be positive integers");
            goto fail;
        }
        J->weight = w[i] = weight;
        if (parse_step_list(steps, P, &J->steps, &J->nsteps, "journeys") < 0) goto fail;
        if (J->nsteps < 1) {
            PyErr_SetString(PyExc_ValueError, "program: a journey has at least one step");
            goto fail;
        }
        J->failed_by_step = xcalloc(J->nsteps, sizeof(uint64_t));
        J->hcorr = xcalloc((size_t)L_MAIN.counts_len, sizeof(uint64_t));
        J->hunc = xcalloc((size_t)L_MAIN.counts_len, sizeof(uint64_t));
        if (!J->failed_by_step || !J->hcorr || !J->hunc) goto nomem;
    }
    Py_CLEAR(seq);
    if (wrr_build(&P->mix, w, P->njourneys, seq_offset) < 0) goto fail;
    if ((o = dict_item(prog, "setup", 0, where)) && o != Py_None &&
        parse_step_list(o, P, &P->setup, &P->nsetup, "setup") < 0)
        goto fail;
    if ((o = dict_item(prog, "teardown", 0, where)) && o != Py_None &&
        parse_step_list(o, P, &P->teardown, &P->nteardown, "teardown") < 0)
        goto fail;
    free(w);
    Py_XDECREF(xq);
    return 0;
nomem:
    PyErr_NoMemory();
fail:
    free(w);
    Py_XDECREF(xq);
    Py_XDECREF(seq);
    return -1;
}

/* --- per-user state ---------------------------------------------------------- */

static void uuid4(uint64_t *rng, char out[36]) {
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(rng), b = rng_next(rng);
    uint8_t r[16];
    memcpy(r, &a, 8);
    memcpy(r + 8, &b, 8);
    r[6] = (uint8_t)((r[6] & 0x0F) | 0x40); /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[k++] = '-';
        out[k++] = hex[r[i] >> 4];
        out[k++] = hex[r[i] & 15];
    }
}

/* A fresh UUID into slot `slot` of `vars` (a user's cur or base); none if slot < 0. */
static void draw_uuid(Engine *E, vval *vars, int slot) {
    if (slot < 0) return;
    char id[36];
    uuid4(E->urng, id);
    vval_set(&vars[slot], id, 36);
}

static int set_decimal(vval *v, uint64_t n) {
    char tmp[24];
    int len = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)n);
    return vval_set(v, tmp, (size_t)len);
}

static int jar_copy(jar_t *to, const jar_t *from) {
    for (int i = 0; i < from->n; i++) {
        if (vval_set(&to->kv[i], from->kv[i].p, from->kv[i].len) < 0) return -1;
        to->nlen[i] = from->nlen[i];
    }
    to->n = from->n;
    return 0;
}

/* Copy every variable (set or not) and the cookie jar from one of the user's sets to the other. */
static int vars_copy(Engine *E, vval *to, const vval *from, jar_t *jar_to, const jar_t *jar_from) {
    program_t *P = E->prog;
    for (int i = 0; i < P->nslots; i++) {
        if (from[i].set) {
            if (vval_set(&to[i], from[i].p, from[i].len) < 0) return -1;
        } else {
            to[i].set = 0;
        }
    }
    if (jar_to && jar_copy(jar_to, jar_from) < 0) return -1;
    return 0;
}

/* The user's variables (and cookies) start over from its base. */
static int vars_reset(Engine *E, vuser_t *u) { return vars_copy(E, u->cur, u->base, u->jar, u->jar_base); }

/* This iteration's (or setup's) variables become what every later iteration starts from. */
static int vars_commit(Engine *E, vuser_t *u) { return vars_copy(E, u->base, u->cur, u->jar_base, u->jar); }

static int users_init(Engine *E) {
    program_t *P = E->prog;
    E->vu = xcalloc((size_t)E->nconns, sizeof(vuser_t));
    if (!E->vu) return -1;
    for (int i = 0; i < E->nconns; i++) {
        vuser_t *u = &E->vu[i];
        u->cur = xcalloc((size_t)P->nslots, sizeof(vval));
        u->base = xcalloc((size_t)P->nslots, sizeof(vval));
        if (!u->cur || !u->base) return -1;
        if (P->cookies) {
            u->jar = calloc(1, sizeof(jar_t));
            u->jar_base = calloc(1, sizeof(jar_t));
            if (!u->jar || !u->jar_base) return -1;
        }
        for (uint32_t k = 0; k < P->ninit; k++)
            if (vval_set(&u->base[P->init_slot[k]], P->init_val[k], P->init_len[k]) < 0) return -1;
        if (P->user_slot >= 0 && set_decimal(&u->base[P->user_slot], P->user_offset + (uint64_t)i) < 0) return -1;
    }
    return 0;
}

static void users_free(Engine *E) {
    if (!E->vu) return;
    int nslots = E->prog ? E->prog->nslots : 0;
    for (int i = 0; i < E->nconns; i++) {
        vuser_t *u = &E->vu[i];
        for (int k = 0; k < nslots; k++) {
            if (u->cur) free(u->cur[k].p);
            if (u->base) free(u->base[k].p);
        }
        free(u->cur);
        free(u->base);
        for (int k = 0; k < MAX_COOKIES; k++) {
            if (u->jar) free(u->jar->kv[k].p);
            if (u->jar_base) free(u->jar_base->kv[k].p);
        }
        free(u->jar);
        free(u->jar_base);
        free(u->req);
        free(u->hdr);
    }
    free(E->vu);
    E->vu = NULL;
}

/* --- building a request ------------------------------------------------------- */

static inline int unreserved(unsigned char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '.' || ch == '_' || ch == '~';
}

static size_t enc_len(int enc, const char *p, size_t n) {
    if (enc == ENC_RAW) return n;
    if (enc == ENC_BASE64) return (n + 2) / 3 * 4;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (enc == ENC_PERCENT)
            out += unreserved(ch) ? 1 : 3;
        else if (ch == '"' || ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\b' || ch == '\f')
            out += 2;
        else
            out += ch < 0x20 ? 6 : 1;
    }
    return out;
}

/* Write the encoded value at dst (enc_len bytes). */
static void enc_put(int enc, const char *p, size_t n, char *dst) {
    static const char hex[] = "0123456789ABCDEF";
    if (enc == ENC_RAW) {
        if (n) memcpy(dst, p, n);
        return;
    }
    if (enc == ENC_BASE64) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *s = (const unsigned char *)p;
        size_t i = 0;
        for (; i + 3 <= n; i += 3) {
            uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
            *dst++ = b64[v >> 18];
            *dst++ = b64[(v >> 12) & 63];
            *dst++ = b64[(v >> 6) & 63];
            *dst++ = b64[v & 63];
        }
        if (i < n) {
            uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
            *dst++ = b64[v >> 18];
            *dst++ = b64[(v >> 12) & 63];
            *dst++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
            *dst++ = '=';
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (enc == ENC_PERCENT) {
            if (unreserved(ch)) {
                *dst++ = (char)ch;
            } else {
                *dst++ = '%';
                *dst++ = hex[ch >> 4];
                *dst++ = hex[ch & 15];
            }
            continue;
        }
        const char *esc = NULL;
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc) {
            *dst++ = esc[0];
            *dst++ = esc[1];
        } else if (ch < 0x20) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[ch >> 4];
            *dst++ = hex[ch & 15];
        } else {
            *dst++ = (char)ch;
        }
    }
}

static int req_reserve(vuser_t *u, size_t more) {
    if (u->reqlen + more <= u->reqcap) return 0;
    size_t ncap = u->reqcap ? u->reqcap : 1024;
    while (ncap < u->reqlen + more) ncap *= 2;
    char *p = realloc(u->req, ncap);
    if (!p) return -1;
    u->req = p;
    u->reqcap = ncap;
    return 0;
}

static size_t parts_len(const pstep_t *st, const vuser_t *u, const tpart *parts, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const tpart *tp = &parts[i];
        total += tp->var ? enc_len(tp->enc, u->cur[tp->slot].p, u->cur[tp->slot].len) : tp->len;
    }
    return total;
}

static void parts_put(const pstep_t *st, vuser_t *u, const tpart *parts, int n) {
    for (int i = 0; i < n; i++) {
        const tpart *tp = &parts[i];
        if (tp->var) {
            const vval *v = &u->cur[tp->slot];
            size_t l = enc_len(tp->enc, v->p, v->len);
            enc_put(tp->enc, v->p, v->len, u->req + u->reqlen);
            u->reqlen += l;
        } else {
            memcpy(u->req + u->reqlen, st->lit + tp->off, tp->len);
            u->reqlen += tp->len;
        }
    }
}

/* Derived slot k made again in u->cur from its parts: 0, or -1 with the reason in why (the
 * first of its variables that is not set). */
static int derive(const program_t *P, vuser_t *u, uint32_t k, char *why) {
    const pstep_t *d = &P->derived[k];
    char tmp[24];
    size_t n = 0;
    for (int i = 0; i < d->nhead; i++) {
        const tpart *tp = &d->head[i];
        if (!tp->var) {
            n += tp->len;
            continue;
        }
        const vval *v = &u->cur[tp->slot];
        if (!v->set) {
            snprintf(why, WHY_MAX, "variable %s is not set", slot_name(P, tp->slot, tmp));
            return -1;
        }
        n += enc_len(tp->enc, v->p, v->len);
    }
    vval *out = &u->cur[P->derived_slot[k]];
    if (n + 1 > out->cap) {
        char *p = realloc(out->p, n + 32);
        if (!p) {
            snprintf(why, WHY_MAX, "out of memory for the request");
            return -1;
        }
        out->p = p;
        out->cap = (uint32_t)(n + 32);
    }
    size_t at = 0;
    for (int i = 0; i < d->nhead; i++) {
        const tpart *tp = &d->head[i];
        if (tp->var) {
            const vval *v = &u->cur[tp->slot];
            enc_put(tp->enc, v->p, v->len, out->p + at);
            at += enc_len(tp->enc, v->p, v->len);
        } else {
            memcpy(out->p + at, d->lit + tp->off, tp->len);
            at += tp->len;
        }
    }
    out->len = (uint32_t)n;
    out->set = 1;
    return 0;
}

/* The step's request for user u in u->req (and u->seg2): 0, or -1 with the reason in why
 * (a variable is not set, or holds a line break where it would end a header line). The
 * derived slots it uses are made first. */
static int build_request(Engine *E, vuser_t *u, const pstep_t *st, char *why) {
    program_t *P = E->prog;
    char tmp[24];
    for (int pass = 0; P->nderived && pass < 2; pass++) {
        const tpart *parts = pass ? st->body : st->head;
        int n = pass ? st->nbody : st->nhead;
        for (int i = 0; i < n; i++)
            if (parts[i].var && P->derived_of[parts[i].slot] >= 0 &&
                derive(P, u, (uint32_t)P->derived_of[parts[i].slot], why) < 0)
                return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        const tpart *parts = pass ? st->body : st->head;
        int n = pass ? st->nbody : st->nhead;
        for (int i = 0; i < n; i++) {
            if (!parts[i].var) continue;
            const vval *v = &u->cur[parts[i].slot];
            if (!v->set) {
                snprintf(why, WHY_MAX, "variable %s is not set", slot_name(P, parts[i].slot, tmp));
                return -1;
            }
            if (!pass && parts[i].enc == ENC_RAW && v->len &&
                (memchr(v->p, '\r', v->len) || memchr(v->p, '\n', v->len))) {
                snprintf(why, WHY_MAX, "variable %s holds a line break: it cannot go into the request head",
                         slot_name(P, parts[i].slot, tmp));
                return -1;
            }
        }
    }
    size_t blen = !st->has_body ? 0 : st->body_vars ? parts_len(st, u, st->body, st->nbody) : st->cbody_len;
    size_t hlen = parts_len(st, u, st->head, st->nhead);
    size_t clen = 0;
    if (st->cookies && u->jar)
        for (int i = 0; i < u->jar->n; i++) clen += u->jar->kv[i].len + 2;
    u->reqlen = 0;
    if (req_reserve(u, hlen + clen + 64 + (st->body_vars ? blen : 0)) < 0) {
        snprintf(why, WHY_MAX, "out of memory for the request");
        return -1;
    }
    parts_put(st, u, st->head, st->nhead);
    if (clen) {
        memcpy(u->req + u->reqlen, "Cookie: ", 8);
        u->reqlen += 8;
        for (int i = 0; i < u->jar->n; i++) {
            if (i) {
                memcpy(u->req + u->reqlen, "; ", 2);
                u->reqlen += 2;
            }
            memcpy(u->req + u->reqlen, u->jar->kv[i].p, u->jar->kv[i].len);
            u->reqlen += u->jar->kv[i].len;
        }
        memcpy(u->req + u->reqlen, "\r\n", 2);
        u->reqlen += 2;
    }
    if (st->has_body) u->reqlen += (size_t)sprintf(u->req + u->reqlen, "Content-Length: %zu\r\n", blen);
    memcpy(u->req + u->reqlen, "\r\n", 2);
    u->reqlen += 2;
    u->seg2 = NULL;
    u->seg2len = 0;
    if (st->body_vars) {
        parts_put(st, u, st->body, st->nbody);
    } else if (blen) {
        u->seg2 = st->lit + st->cbody_off;
        u->seg2len = blen;
    }
    return 0;
}

/* --- from the response: cookies and extraction ------------------------------ */

/* The parser refuses a header block over MAX_HEAD, however it arrived: len <= MAX_HEAD. */
static void keep_head(vuser_t *u, const char *h, size_t len) {
    if (len > u->hdrcap) {
        size_t ncap = len > MAX_HEAD ? len : MAX_HEAD; /* len > MAX_HEAD: never, but safe */
        char *p = realloc(u->hdr, ncap);
        if (!p) {
            u->hdrlen = 0;
            return;
        }
        u->hdr = p;
        u->hdrcap = ncap;
    }
    memcpy(u->hdr, h, len);
    u->hdrlen = len;
}

/* The first header `name` (lowercase) of the kept block, trimmed; NULL if none. */
static const char *head_value(const vuser_t *u, const char *name, size_t nl, size_t *vlen) {
    const char *h = u->hdr, *end = h + u->hdrlen, *p = h ? memchr(h, '\n', u->hdrlen) : NULL;
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) return NULL;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') ll--;
        const char *colon = memchr(p, ':', ll);
        if (colon && (size_t)(colon - p) == nl && ieq(p, name, nl)) {
            const char *v = colon + 1, *ve = p + ll;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* Set-Cookie: name=value[; attributes] -> the user's jar; Max-Age <= 0 deletes it. */
static void take_cookies(vuser_t *u) {
    if (!u->jar || !u->hdr) return;
    const char *h = u->hdr, *end = h + u->hdrlen, *p = memchr(h, '\n', u->hdrlen);
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) return;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') ll--;
        const char *next = eol;
        if (ll > 11 && ieq(p, "set-cookie:", 11)) {
            const char *v = p + 11, *ve = p + ll;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            const char *semi = memchr(v, ';', (size_t)(ve - v));
            const char *pe = semi ? semi : ve;
            while (pe > v && (pe[-1] == ' ' || pe[-1] == '\t')) pe--;
            const char *eq = memchr(v, '=', (size_t)(pe - v));
            if (eq && eq > v && (size_t)(pe - v) <= COOKIE_MAX) {
                size_t nl = (size_t)(eq - v), kvl = (size_t)(pe - v);
                int remove = 0;
                for (const char *a = semi; a && a < ve;) { /* attributes: only Max-Age matters */
                    a++;
                    while (a < ve && (*a == ' ' || *a == '\t')) a++;
                    const char *ae = memchr(a, ';', (size_t)(ve - a));
                    if (!ae) ae = ve;
                    if (ae - a > 8 && ieq(a, "max-age=", 8)) { /* a number <= 0 */
                        const char *d = a + 8;
                        remove = d < ae && *d == '-';
                        if (!remove) {
                            while (d < ae && *d == '0') d++;
                            while (d < ae && (*d == ' ' || *d == '\t')) d++;
                            remove = d == ae && a[8] == '0';
                        }
                    }
                    a = ae < ve ? ae : NULL;
                }
                int at = -1;
                for (int i = 0; i < u->jar->n; i++)
                    if (u->jar->nlen[i] == nl && memcmp(u->jar->kv[i].p, v, nl) == 0) at = i;
                if (remove && at >= 0) {
                    vval gone = u->jar->kv[at];
                    for (int i = at; i + 1 < u->jar->n; i++) {
                        u->jar->kv[i] = u->jar->kv[i + 1];
                        u->jar->nlen[i] = u->jar->nlen[i + 1];
                    }
                    u->jar->n--;
                    u->jar->kv[u->jar->n] = gone; /* its buffer is reused */
                } else if (!remove) {
                    if (at < 0 && u->jar->n < MAX_COOKIES) at = u->jar->n++;
                    if (at >= 0 && vval_set(&u->jar->kv[at], v, kvl) == 0)
                        u->jar->nlen[at] = (uint16_t)nl;
                    else if (at >= 0 && at == u->jar->n - 1 && !u->jar->kv[at].set)
                        u->jar->n--;
                }
            }
        }
        p = next;
    }
}

/* The text of the JSON value at v (validated document): a string unescaped (unless
 * `as_written`), anything else as written. */
static int json_text(const char *v, const char *end, int as_written, vval *out, char *why, const extract_t *x,
                     const char *name) {
    jscan s = {v, v, end, NULL};
    if (*v != '"' || as_written) {
        if (jskip(&s) < 0) return -1;
        size_t n = (size_t)(s.p - v);
        if (n > MAX_VALUE) {
            snprintf(why, WHY_MAX, "extract %s: %s is over %d bytes", name, x->what, MAX_VALUE);
            return -1;
        }
        if (vval_set(out, v, n) < 0) goto nomem;
        return 0;
    }
    char buf[4];
    s.p++;
    out->len = 0;
    out->set = 0;
    for (;;) {
        int n = jchar(&s, buf);
        if (n < 0) return -1;
        if (n == 0) break;
        if (out->len + (uint32_t)n > MAX_VALUE) {
            snprintf(why, WHY_MAX, "extract %s: %s is over %d bytes", name, x->what, MAX_VALUE);
            return -1;
        }
        if (out->len + (uint32_t)n + 1 > out->cap) {
            size_t ncap = out->cap ? out->cap * 2 : 64;
            char *p = realloc(out->p, ncap);
            if (!p) goto nomem;
            out->p = p;
            out->cap = (uint32_t)ncap;
        }
        memcpy(out->p + out->len, buf, (size_t)n);
        out->len += (uint32_t)n;
    }
    out->set = 1;
    return 0;
nomem:
    snprintf(why, WHY_MAX, "extract %s: out of memory", name);
    return -1;
}

/* Run the step's extractions on the response c just completed (it met its expect):
 * 0, or -1 with the reason in why. */
static int extract_all(Engine *E, conn_t *c, vuser_t *u, const pstep_t *st, char *why) {
    program_t *P = E->prog;
    xstate *s = E->xs[c - E->conns];
    const char *doc = s && s->buf ? s->buf : "", *stop = doc + (s ? s->len : 0);
    int validated = E->eps[c->ep].x->njson > 0; /* x_json checked the document already */
    char tmp[24];
    for (int i = 0; i < st->nex; i++) {
        const extract_t *x = &st->ex[i];
        const char *name = slot_name(P, x->slot, tmp);
        vval *dst = &u->cur[x->slot];
        if ((x->kind == EX_JSON || x->kind == EX_JSON_VALUE || x->kind == EX_REGEX) && (!s || s->too_large)) {
            snprintf(why, WHY_MAX, "extract %s: the body is over %zu bytes", name, E->eps[c->ep].x->max_body);
            return -1;
        }
        switch (x->kind) {
        case EX_STATUS:
            if (set_decimal(dst, (uint64_t)c->status) < 0) goto nomem;
            break;
        case EX_HEADER: {
            size_t vl = 0;
            const char *v = head_value(u, x->name, x->nlen, &vl);
            if (!v) {
                snprintf(why, WHY_MAX, "extract %s: header %s not found", name, x->what);
                return -1;
            }
            if (vl > MAX_VALUE) {
                snprintf(why, WHY_MAX, "extract %s: header %s is over %d bytes", name, x->what, MAX_VALUE);
                return -1;
            }
            if (vval_set(dst, v, vl) < 0) goto nomem;
            break;
        }
        case EX_JSON:
        case EX_JSON_VALUE: {
            if (!validated) {
                jscan v = {doc, doc, stop, NULL};
                if (jskip(&v) == 0) {
                    jws(&v);
                    if (v.p < v.end) jfail(&v, "more data after the JSON document");
                }
                if (v.err) {
                    snprintf(why, WHY_MAX, "extract %s: the body is not JSON: %s (at byte %zu)", name, v.err,
                             (size_t)(v.p - v.start));
                    return -1;
                }
                validated = 1;
            }
            xjson q = {.parts = x->parts, .nparts = x->nparts};
            const char *at = jfind(doc, stop, &q);
            if (!at) {
                snprintf(why, WHY_MAX, "extract %s: %s not found", name, x->what);
                return -1;
            }
            if (json_text(at, stop, x->kind == EX_JSON_VALUE, dst, why, x, name) < 0) {
                if (!why[0]) snprintf(why, WHY_MAX, "extract %s: %s is not readable", name, x->what);
                return -1;
            }
            break;
        }
        case EX_REGEX: {
            /* REG_STARTEND bounds the match, but the body is also NUL-terminated: some regexec
             * implementations (and sanitizers' interceptors) read the string up to a NUL */
            if (s->buf) {
                if (s->len == s->cap) {
                    char *nb = realloc(s->buf, s->cap + 1);
                    if (!nb) goto nomem;
                    s->buf = nb;
                    s->cap++;
                    doc = s->buf;
                    stop = doc + s->len;
                }
                s->buf[s->len] = 0;
            }
            regmatch_t m[2];
            m[0].rm_so = 0;
            m[0].rm_eo = (regoff_t)(stop - doc);
            if (regexec(&x->re, doc, 2, m, REG_STARTEND) != 0) {
                snprintf(why, WHY_MAX, "extract %s: /%s/ does not match the body", name, x->what);
                return -1;
            }
            int g = x->re.re_nsub >= 1 && m[1].rm_so >= 0 ? 1 : 0;
            size_t n = (size_t)(m[g].rm_eo - m[g].rm_so);
            if (n > MAX_VALUE) {
                snprintf(why, WHY_MAX, "extract %s: the match is over %d bytes", name, MAX_VALUE);
                return -1;
            }
            if (vval_set(dst, doc + m[g].rm_so, n) < 0) goto nomem;
            break;
        }
        }
    }
    return 0;
nomem:
    snprintf(why, WHY_MAX, "extract: out of memory");
    return -1;
}

/* ------------------------------------------------------------------------- */
/* Streaming responses (server-sent events, chunked or line-delimited bodies) */
/* ------------------------------------------------------------------------- */

/* An endpoint that answers with a stream has its body divided into *events* as it arrives,
 * scanned in place in the read buffer (nothing is copied):
 *   S_SSE    server-sent events: an event ends at an empty line (lines end in LF, CRLF or
 *            CR); a block of only comment lines (starting with ':', keep-alives) is no event
 *   S_CHUNKS every chunk of a chunked body (a body that is not chunked has no events)
 *   S_LINES  every non-empty line (newline-delimited JSON, as some LLM servers stream); the
 *            body's last line counts without a newline too
 * Bytes that arrive in one read arrive at one time: E->read_ns, taken once per read of a
 * streaming request. Measured phase only, per endpoint, L_MAIN layout:
 *   SH_FIRST / SH_FIRST_UNC  time to the first event from the intended / actual send (us)
 *   SH_GAP     time between consecutive events of a response (us; 0 for events of one read)
 *   SH_EVENTS  events per ended stream
 *   SH_DUR     an ended stream's span, from its first body byte to its end (us)
 *   SH_EPS, SH_BPS  an ended stream's events per second (stored in milli-events/s) and
 *              body bytes per second over that span: only for a span > 0 (a body read at
 *              once has no measurable rate)
 * An ended stream: a response read to its end whose status is no error (no 4xx/5xx, or one
 * its expect allows), whether or not it met the rest of its expect: a stream that ends
 * cleanly but early (without the terminator its expect asks for) shows its few events. First events
 * and gaps are recorded as they happen, those of streams later cut or failed included. A
 * stream is *cut* when its connection closed, was reset or timed out after the response's
 * head and before its body ended; the request also counts as that error kind. The first
 * KEEP_CUTS cut streams of an endpoint are kept as examples (scut_t); to have their last
 * bytes, a streaming request keeps its last CUT_TAIL body bytes while the examples are not
 * all kept yet (a copy of at most CUT_TAIL bytes per read; none once they are). */
enum { S_NONE, S_SSE, S_CHUNKS, S_LINES };

#define KEEP_CUTS 5  /* cut streams kept per endpoint, measured phase (results.KEPT_CUTS) */
#define CUT_TAIL 160 /* the last body bytes kept of a cut stream */

enum { SH_FIRST, SH_FIRST_UNC, SH_GAP, SH_EVENTS, SH_DUR, SH_EPS, SH_BPS, STREAM_HISTS };
static const char *const STREAM_HIST_NAMES[STREAM_HISTS] = {
    "first_event", "first_event_uncorrected", "between_events",  "events_per_stream",
    "duration",    "milli_events_per_second", "bytes_per_second"}; /* results()' keys */

/* A cut stream, kept as an example. */
typedef struct {
    int kind, status;
    uint64_t events, bytes;        /* received before the cut */
    int64_t after_us, quiet_us;    /* from the send to the cut; from the last event to the cut (-1: none) */
    int64_t at_us;                 /* the cut, from the start of the measured phase */
    size_t tail_len;
    char tail[CUT_TAIL];           /* the last body bytes received */
} scut_t;

typedef struct stream_s {
    uint64_t streams, cut, events, bytes; /* measured phase: ended streams (events, bytes: theirs) */
    uint64_t *h[STREAM_HISTS];
    scut_t cuts[KEEP_CUTS]; /* the first cut streams of the measured phase */
    int ncuts;
} stream_t;

typedef struct sstate_s {
    int64_t first_byte, last_event; /* ns */
    uint64_t events, bytes;
    uint8_t line_start; /* the next byte starts a line */
    uint8_t has_field;  /* S_SSE: the event block so far has a line that is no comment; S_LINES: the line has bytes */
    uint8_t cr;         /* the previous byte was CR: an LF now only completes its line end */
    size_t tail_len;    /* the last body bytes, while the endpoint keeps cut streams */
    char tail[CUT_TAIL];
} sstate;

static void stream_free(stream_t *st) {
    if (!st) return;
    for (int i = 0; i < STREAM_HISTS; i++) free(st->h[i]);
    free(st);
}

static stream_t *stream_new(void) {
    stream_t *st = calloc(1, sizeof(stream_t));
    if (!st) return NULL;
    for (int i = 0; i < STREAM_HISTS; i++) {
        st->h[i] = calloc((size_t)L_MAIN.counts_len, sizeof(uint64_t));
        if (!st->h[i]) {
            stream_free(st);
            return NULL;
        }
    }
    return st;
}

static inline void s_begin(Engine *E, conn_t *c) {
    sstate *s = &E->ss[c - E->conns];
    memset(s, 0, sizeof(*s));
    s->line_start = 1;
}

static void s_event(Engine *E, conn_t *c) {
    sstate *s = &E->ss[c - E->conns];
    int64_t now = E->read_ns;
    if (c->phase == PH_MEASURED) {
        stream_t *st = E->eps[c->ep].st;
        if (s->events == 0) {
            st->h[SH_FIRST][hindex(&L_MAIN, (now - c->intended) / 1000)]++;
            st->h[SH_FIRST_UNC][hindex(&L_MAIN, (now - c->sent) / 1000)]++;
        } else {
            st->h[SH_GAP][hindex(&L_MAIN, (now - s->last_event) / 1000)]++;
        }
    }
    s->events++;
    s->last_event = now;
}

/* Keep the last CUT_TAIL bytes of the body so far, d (n bytes) its latest. */
static void s_tail(sstate *s, const char *d, size_t n) {
    if (n >= CUT_TAIL) {
        memcpy(s->tail, d + n - CUT_TAIL, CUT_TAIL);
        s->tail_len = CUT_TAIL;
        return;
    }
    size_t keep = s->tail_len + n > CUT_TAIL ? CUT_TAIL - n : s->tail_len;
    memmove(s->tail, s->tail + s->tail_len - keep, keep);
    memcpy(s->tail + keep, d, n);
    s->tail_len = keep + n;
}

/* n body bytes (chunk framing excluded) of a streaming response, in place. */
static void s_body(Engine *E, conn_t *c, const char *d, size_t n) {
    if (!n) return;
    sstate *s = &E->ss[c - E->conns];
    if (!s->first_byte) s->first_byte = E->read_ns;
    s->bytes += n;
    if (c->phase == PH_MEASURED && E->eps[c->ep].st->ncuts < KEEP_CUTS) s_tail(s, d, n);
    int mode = E->eps[c->ep].stream;
    if (mode == S_CHUNKS) return;
    const char *p = d, *end = d + n;
    while (p < end) {
        char ch = *p++;
        if (ch == '\n' && s->cr) { /* the LF of a CRLF: its line already ended at the CR */
            s->cr = 0;
            continue;
        }
        s->cr = ch == '\r';
        if (ch == '\r' || ch == '\n') {
            if (mode == S_LINES) {
                if (s->has_field) s_event(E, c);
                s->has_field = 0;
            } else if (s->line_start) { /* an empty line ends the event block */
                if (s->has_field) s_event(E, c);
                s->has_field = 0;
            }
            s->line_start = 1;
            continue;
        }
        if (mode == S_LINES) {
            s->has_field = 1;
        } else if (s->line_start && ch != ':') {
            s->has_field = 1;
        }
        s->line_start = 0;
        /* the rest of the line decides nothing: skip to its end */
        while (p < end && *p != '\n' && *p != '\r') p++;
    }
}

/* the end of a chunk's data: S_CHUNKS counts it as an event */
static inline void s_chunk_end(Engine *E, conn_t *c) {
    if (E->eps[c->ep].stream == S_CHUNKS) s_event(E, c);
}

/* A streaming response is complete (err: its error kind, -1 for none): an ended stream
 * unless its status was an error. */
static void s_complete(Engine *E, conn_t *c, int64_t now, int err) {
    sstate *s = &E->ss[c - E->conns];
    if (E->eps[c->ep].stream == S_LINES && s->has_field) { /* the body's last line needs no newline */
        E->read_ns = now;                                     /* it ended with the body */
        s_event(E, c);
        s->has_field = 0;
    }
    if (c->phase != PH_MEASURED || (err >= 0 && err != E_ASSERT)) return;
    stream_t *st = E->eps[c->ep].st;
    st->streams++;
    st->events += s->events;
    st->bytes += s->bytes;
    st->h[SH_EVENTS][hindex(&L_MAIN, (int64_t)s->events)]++;
    if (!s->first_byte) return;
    int64_t span = now - s->first_byte;
    if (span < 0) span = 0;
    st->h[SH_DUR][hindex(&L_MAIN, span / 1000)]++;
    if (span <= 0) return;
    double seconds = (double)span / 1e9;
    st->h[SH_EPS][hindex(&L_MAIN, (int64_t)llround(fmin((double)s->events * 1000.0 / seconds, 1e17)))]++;
    st->h[SH_BPS][hindex(&L_MAIN, (int64_t)llround(fmin((double)s->bytes / seconds, 1e17)))]++;
}

/* A streaming request failed with error kind `kind`: a cut stream is counted, the first
 * ones kept (the clock is read for those only). */
static void s_fail(Engine *E, conn_t *c, int kind) {
    if (c->phase != PH_MEASURED || c->status <= 0) return; /* no head yet: no stream begun */
    if (kind != E_CLOSED && kind != E_RESET && kind != E_TIMEOUT) return;
    stream_t *st = E->eps[c->ep].st;
    st->cut++;
    if (st->ncuts >= KEEP_CUTS) return;
    const sstate *s = &E->ss[c - E->conns];
    scut_t *k = &st->cuts[st->ncuts++];
    int64_t now = mono_ns();
    k->kind = kind;
    k->status = c->status;
    k->events = s->events;
    k->bytes = s->bytes;
    k->after_us = (now - c->sent) / 1000;
    k->quiet_us = s->events ? (now - s->last_event) / 1000 : -1;
    k->at_us = (now - E->measure_ns) / 1000;
    k->tail_len = s->tail_len;
    memcpy(k->tail, s->tail, s->tail_len);
}

/* ------------------------------------------------------------------------- */
/* Request lifecycle                                                          */
/* ------------------------------------------------------------------------- */

static void after_release(Engine *E, conn_t *c, int64_t now, int err);
static void send_request(Engine *E, conn_t *c, int64_t now);
static void prog_complete(Engine *E, conn_t *c, int64_t now);
static void prog_after(Engine *E, conn_t *c, int64_t now, int err);
static int prog_dispatch(Engine *E, uint32_t j, int64_t intended, int phase, int64_t now);

/* What happened in the measured phase, in the run's series and in endpoint ep's. */
static inline void series_sent(Engine *E, uint32_t ep, int late, int64_t now) {
    secrec *er, *r = ep_at(E, ep, now, &er);
    r->sent++;
    r->late += (uint64_t)late;
    if (er) {
        er->sent++;
        er->late += (uint64_t)late;
    }
}

static inline void series_error(Engine *E, uint32_t ep, int kind, int64_t now) {
    secrec *er, *r = ep_at(E, ep, now, &er);
    r->errors[kind]++;
    if (er) er->errors[kind]++;
}

static inline void series_response(Engine *E, uint32_t ep, int err, int64_t corr_us, int64_t now) {
    secrec *er, *r = ep_at(E, ep, now, &er);
    r->responses++;
    if (err >= 0) r->errors[err]++;
    int32_t i = hindex(&L_SERIES, corr_us);
    series_count(&E->S, i);
    if (er) {
        er->responses++;
        if (err >= 0) er->errors[err]++;
        series_count(E->SE[ep], i); /* er: SE[ep] is there */
    }
}

/* Attach a request to connection c (which may still be connecting). */
static void begin(Engine *E, conn_t *c, uint32_t ep, int64_t intended, int phase, int64_t now) {
    endpoint *e = &E->eps[ep];
    c->ep = ep;
    c->phase = (uint8_t)phase;
    c->intended = intended;
    c->sent = now;
    c->deadline = now + E->timeout_ns;
    c->woff = 0;
    c->pstate = P_HEAD;
    c->hlen = 0;
    c->status = 0;
    c->flags = e->head ? F_HEAD : 0;
    if (e->x) x_begin(E, c, e->x, phase == PH_MEASURED);
    if (e->st) {
        c->flags |= F_STREAM;
        s_begin(E, c);
    }
    busy_append(E, c);
    counters *k = &e->c[phase];
    k->sent++;
    int late = now - intended > E->late_ns;
    if (late) k->late++;
    if (phase == PH_MEASURED) series_sent(E, ep, late, now);
}

/* The request on c failed: count it, close the socket, free the slot. */
static void fail(Engine *E, conn_t *c, int kind, int64_t now) {
    if (c->flags & F_STREAM) s_fail(E, c, kind);
    endpoint *e = &E->eps[c->ep];
    e->c[c->phase].errors[kind]++;
    if (c->phase == PH_MEASURED) series_error(E, c->ep, kind, now);
    busy_remove(E, c);
    conn_close(E, c);
    after_release(E, c, now, kind);
}

/* A reused keep-alive connection that the server had already closed fails with
 * EOF/RST before any response byte. As HTTP clients do, send the request once more
 * on a new connection; a fresh connection failing the same way is an error. */
static void retry_or_fail(Engine *E, conn_t *c, int kind, int64_t now) {
    if (c->nreq > 0 && !(c->flags & (F_GOT | F_RETRIED)) && (kind == E_CLOSED || kind == E_RESET)) {
        close(c->fd);
        c->fd = -1;
        E->nopen--;
        E->retries++;
        busy_remove(E, c);
        int err = conn_open(E, c);
        if (err) {
            /* count it against the request, slot handling as in fail() */
            endpoint *e = &E->eps[c->ep];
            e->c[c->phase].errors[err]++;
            if (c->phase == PH_MEASURED) series_error(E, c->ep, err, now);
            conn_close(E, c);
            after_release(E, c, now, err);
            return;
        }
        c->flags |= F_RETRIED;
        c->woff = 0;
        if (E->prog) {
            c->deadline = now + E->vu[c - E->conns].tmo_ns;
            busy_insert(E, c);
        } else {
            c->deadline = now + E->timeout_ns;
            busy_append(E, c);
        }
        if (c->state == C_READING) send_request(E, c, now); /* connected at once */
        return;
    }
    fail(E, c, kind, now);
}

static void send_request(Engine *E, conn_t *c, int64_t now) {
    const char *req, *b2 = NULL;
    size_t len, l2 = 0;
    if (E->prog) { /* built per send; a constant body goes from the program as is */
        const vuser_t *u = &E->vu[c - E->conns];
        req = u->req;
        len = u->reqlen;
        b2 = u->seg2;
        l2 = u->seg2len;
    } else {
        req = E->eps[c->ep].req;
        len = E->eps[c->ep].len;
    }
    /* One send() per request in the common case; MSG_NOSIGNAL: no SIGPIPE. */
    while (c->woff < len + l2) {
        ssize_t n;
        if (!l2) {
            n = send(c->fd, req + c->woff, len - c->woff, MSG_NOSIGNAL);
        } else {
            struct iovec iov[2];
            struct msghdr m = {.msg_iov = iov, .msg_iovlen = 0};
            if (c->woff < len) iov[m.msg_iovlen++] = (struct iovec){(void *)(req + c->woff), len - c->woff};
            size_t o2 = c->woff > len ? c->woff - len : 0;
            iov[m.msg_iovlen++] = (struct iovec){(void *)(b2 + o2), l2 - o2};
            n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        }
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != C_WRITING) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = EVDATA(E, c)};
                epoll_ctl(E->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->state = C_WRITING;
            }
            return;
        }
        retry_or_fail(E, c, E_RESET, now);
        return;
    }
    if (c->state == C_WRITING) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EVDATA(E, c)};
        epoll_ctl(E->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
    c->state = C_READING;
}

/* Hand a request to a connection: an idle one, else a new one under the cap.
 * Returns 0 if none could be had (the caller queues the request). */
static int dispatch(Engine *E, uint32_t ep, int64_t intended, int phase, int64_t now) {
    conn_t *c = idle_pop(E);
    if (c) {
        c->state = C_READING;
        begin(E, c, ep, intended, phase, now);
        send_request(E, c, now);
        return 1;
    }
    if (E->nopen >= E->max_conn || E->nfree == 0) return 0;
    c = &E->conns[E->free_slots[--E->nfree]];
    int err = conn_open(E, c);
    begin(E, c, ep, intended, phase, now);
    if (err) {
        fail(E, c, err, now);
        return 1;
    }
    if (c->state == C_READING) send_request(E, c, now);
    return 1;
}

/* The endpoint a queued item counts against: program mode queues a journey's iteration,
 * which counts against its first step. */
static uint32_t queued_endpoint(Engine *E, uint32_t ep) { return E->prog ? E->prog->journeys[ep].steps[0] : ep; }

static void drop(Engine *E, uint32_t ep, int phase, int64_t now) {
    ep = queued_endpoint(E, ep);
    E->eps[ep].c[phase].dropped++;
    if (phase != PH_MEASURED) return;
    secrec *er, *r = ep_at(E, ep, now, &er);
    r->dropped++;
    if (er) er->dropped++;
}

static int enqueue(Engine *E, uint32_t ep, int64_t intended, int phase, int64_t now) {
    if (E->qlen >= E->max_queue) {
        drop(E, ep, phase, now);
        return 0;
    }
    if (E->qlen == E->qcap) {
        size_t ncap = E->qcap ? E->qcap * 2 : 1024;
        qitem *p = malloc(ncap * sizeof(qitem));
        if (!p) {
            drop(E, ep, phase, now);
            return 0;
        }
        for (size_t i = 0; i < E->qlen; i++) p[i] = E->q[(E->qhead + i) % E->qcap];
        free(E->q);
        E->q = p;
        E->qcap = ncap;
        E->qhead = 0;
    }
    qitem *it = &E->q[(E->qhead + E->qlen) % E->qcap];
    it->intended = intended;
    it->ep = ep;
    it->phase = (uint32_t)phase;
    E->qlen++;
    return 1;
}

static inline qitem *qfront(Engine *E) { return E->qlen ? &E->q[E->qhead] : NULL; }
static inline void qpop(Engine *E) {
    E->qhead = (E->qhead + 1) % E->qcap;
    E->qlen--;
}

/* Queued requests: drop the expired ones at the head, send the rest while
 * connections can be had. */
static void drain_queue(Engine *E, int64_t now) {
    qitem *it;
    while ((it = qfront(E)) != NULL) {
        if (now - it->intended > E->timeout_ns) {
            drop(E, it->ep, (int)it->phase, now);
            qpop(E);
            continue;
        }
        if (E->idle_head < 0 && (E->nfree == 0 || (!E->prog && E->nopen >= E->max_conn))) break;
        qitem copy = *it;
        qpop(E);
        if (E->prog)
            prog_dispatch(E, copy.ep, copy.intended, (int)copy.phase, now);
        else
            dispatch(E, copy.ep, copy.intended, (int)copy.phase, now);
    }
}

static inline uint32_t next_endpoint(Engine *E) { return wrr_next(&E->mix, E->rng); }

/* closed model: can a user still send a request intended at time t? */
static int closed_may_send(Engine *E, int64_t t) {
    if (t >= E->end_ns) return 0;
    if (t >= E->measure_ns && E->max_requests && E->measured_issued >= E->max_requests) return 0;
    return 1;
}

static void user_send(Engine *E, conn_t *c, int64_t intended, int64_t now) {
    int phase = intended < E->measure_ns ? PH_WARMUP : PH_MEASURED;
    if (phase == PH_MEASURED) E->measured_issued++;
    uint32_t ep = next_endpoint(E);
    if (now - intended > E->late_ns) E->eps[ep].c[phase].behind++; /* the loop woke late for it */
    int err = 0;
    if (c->fd < 0) {
        err = conn_open(E, c);
    } else {
        c->state = C_READING;
    }
    begin(E, c, ep, intended, phase, now);
    if (err) {
        fail(E, c, err, now);
        return;
    }
    if (c->state == C_READING) send_request(E, c, now);
}

static void think_push(Engine *E, int32_t user, int64_t due) {
    /* capacity == users and a user is queued at most once: never full */
    titem *t = &E->tq[(E->tqhead + E->tqlen) % E->tqcap];
    t->due = due;
    t->user = user;
    E->tqlen++;
}

/* The connection has finished with its request: err is -1 after a response, else
 * the error kind. Never recurses into another failure path: after an error, queued
 * requests are sent from the main loop and a closed-model user waits on a timer. */
static void after_release(Engine *E, conn_t *c, int64_t now, int err) {
    if (E->prog) {
        prog_after(E, c, now, err);
        return;
    }
    if (!E->closed) {
        if (c->fd < 0) return; /* the main loop drains the queue onto new connections */
        /* keep-alive socket: serve the queue first, else park it */
        qitem *it;
        while ((it = qfront(E)) != NULL && now - it->intended > E->timeout_ns) {
            drop(E, it->ep, (int)it->phase, now);
            qpop(E);
        }
        if (it) {
            qitem copy = *it;
            qpop(E);
            c->state = C_READING;
            begin(E, c, copy.ep, copy.intended, (int)copy.phase, now);
            send_request(E, c, now);
        } else {
            idle_push(E, c);
        }
        return;
    }
    /* closed model: the same user goes on after its think time */
    if (c->fd >= 0) c->state = C_IDLE;
    if (err < 0 && E->think_ns == 0) {
        if (closed_may_send(E, now)) user_send(E, c, now, now);
        return;
    }
    /* After a failed connect a user without think time pauses instead of spinning. Only
     * then: every timer of a run has the same delay, so the timer FIFO stays in due order. */
    int64_t d = E->think_ns;
    if ((err == E_REFUSED || err == E_CONNECT) && d == 0) d = CONNECT_ERROR_PAUSE_NS;
    if (closed_may_send(E, now + d)) think_push(E, (int32_t)(c - E->conns), now + d);
}

static void complete(Engine *E, conn_t *c, int64_t now) {
    if (E->prog) {
        prog_complete(E, c, now);
        return;
    }
    endpoint *e = &E->eps[c->ep];
    int phase = c->phase;
    counters *k = &e->c[phase];
    k->responses++;
    int st = c->status;
    if (st >= 0 && st < NSTATUS) e->status[phase][st]++;
    int err = -1;
    if (c->flags & F_X) {
        err = x_judge(E, e, c, 1);
        x_release(E, c);
    } else if (st >= 400) {
        err = st >= 500 ? E_5XX : E_4XX;
    }
    if (err >= 0) k->errors[err]++;
    if (c->flags & F_STREAM) s_complete(E, c, now, err);
    if (phase == PH_MEASURED) {
        int64_t corr = (now - c->intended) / 1000, unc = (now - c->sent) / 1000;
        e->hcorr[hindex(&L_MAIN, corr)]++;
        e->hunc[hindex(&L_MAIN, unc)]++;
        series_response(E, c->ep, err, corr, now);
    }
    busy_remove(E, c);
    c->nreq++;
    if (c->flags & F_CLOSE || c->state == C_WRITING) {
        conn_close(E, c);
    } else {
        c->state = C_IDLE;
    }
    after_release(E, c, now, -1);
}

/* ------------------------------------------------------------------------- */
/* Journey programs: the virtual users                                        */
/* ------------------------------------------------------------------------- */

/* A user is a connection slot (closed: one per user; open: max_connections of them). It
 * runs its setup once, then iterations (closed: back to back, think_time apart; open: one
 * per arrival that takes it), then its teardown once. Every wait (a step's think time, a
 * poll's interval, the next iteration) is a timer in one min-heap; after a failure the
 * user always goes on from a timer or the main loop, never by recursion. */

static inline vuser_t *user_of(Engine *E, conn_t *c) { return &E->vu[c - E->conns]; }
static inline conn_t *conn_of(Engine *E, vuser_t *u) { return &E->conns[u - E->vu]; }

static void heap_push(Engine *E, vuser_t *u, int64_t due) {
    size_t i = E->heaplen++; /* capacity: one timer per user at most */
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (E->heap[parent].due <= due) break;
        E->heap[i] = E->heap[parent];
        i = parent;
    }
    E->heap[i].due = due;
    E->heap[i].user = (int32_t)(u - E->vu);
}

static titem heap_pop(Engine *E) {
    titem top = E->heap[0], last = E->heap[--E->heaplen];
    size_t i = 0, n = E->heaplen;
    if (!n) return top;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = l + 1 < n && E->heap[l + 1].due < E->heap[l].due ? l + 1 : l;
        if (last.due <= E->heap[m].due) break;
        E->heap[i] = E->heap[m];
        i = m;
    }
    E->heap[i] = last;
    return top;
}

static inline int keeps_evidence(const vuser_t *u, int phase) {
    return phase == PH_MEASURED || u->mode == U_SETUP || u->mode == U_TEARDOWN;
}

static void step_done(Engine *E, vuser_t *u, int64_t now, int err);
static void start_iteration(Engine *E, vuser_t *u, uint32_t j, int64_t intended, int phase, int64_t now);

/* A step that failed before it was sent: one request with an assertion error, no response. */
static void step_unsent(Engine *E, vuser_t *u, uint32_t ep, const char *why, int counted, int64_t now) {
    endpoint *e = &E->eps[ep];
    int phase = u->phase;
    if (!counted) e->c[phase].sent++;
    e->c[phase].errors[E_ASSERT]++;
    if (phase == PH_MEASURED) {
        if (!counted) series_sent(E, ep, 0, now);
        series_error(E, ep, E_ASSERT, now);
    }
    if (keeps_evidence(u, phase)) x_keep(e->x, NULL, 0, E_ASSERT, XF_VARIABLE, 0, why, strlen(why));
}

static void user_finish(Engine *E, vuser_t *u) {
    (void)E;
    u->mode = U_DONE;
}

/* The current step (u->list[u->pos]): build its request and send it; a poll's next
 * attempt (u->polling) is the same request, counted once. */
static void step_send(Engine *E, vuser_t *u, int64_t now) {
    program_t *P = E->prog;
    conn_t *c = conn_of(E, u);
    uint32_t ep = u->list[u->pos];
    const pstep_t *st = &P->steps[ep];
    endpoint *e = &E->eps[ep];
    int retry = u->polling, phase = u->phase;
    if (u->mode == U_TEARDOWN && now >= u->teardown_until) { /* teardown is bounded by `timeout` */
        user_finish(E, u);
        return;
    }
    char why[WHY_MAX];
    if (build_request(E, u, st, why) < 0) {
        u->polling = 0;
        step_unsent(E, u, ep, why, retry, now);
        step_done(E, u, now, E_ASSERT);
        return;
    }
    int first = u->mode == U_ITER && u->pos == 0;
    if (!retry) {
        u->step_sent = now;
        u->step_int = first ? u->intended : now;
        if (first) u->started = now;
        if (st->poll) u->poll_until = now + st->poll_for_ns;
    }
    int64_t tmo = st->timeout_ns ? st->timeout_ns : E->timeout_ns;
    if (u->mode == U_TEARDOWN && now + tmo > u->teardown_until) tmo = u->teardown_until - now;
    u->tmo_ns = tmo;
    int err = 0;
    if (c->fd < 0)
        err = conn_open(E, c);
    else
        c->state = C_READING;
    c->ep = ep;
    c->phase = (uint8_t)phase;
    c->intended = u->step_int;
    c->sent = u->step_sent;
    c->deadline = now + tmo;
    c->woff = 0;
    c->pstate = P_HEAD;
    c->hlen = 0;
    c->status = 0;
    c->flags = e->head ? F_HEAD : 0;
    x_begin(E, c, e->x, keeps_evidence(u, phase));
    busy_insert(E, c);
    if (!retry) {
        counters *k = &e->c[phase];
        k->sent++;
        int late = now - u->step_int > E->late_ns;
        if (late) k->late++;
        if (phase == PH_MEASURED) series_sent(E, ep, late, now);
    }
    if (err) {
        fail(E, c, err, now);
        return;
    }
    if (c->state == C_READING) send_request(E, c, now);
}

static void teardown_start(Engine *E, vuser_t *u, int64_t now);

/* The user is past its last iteration. Its teardown waits until every user is (the drain of
 * the measured iterations is over), then all the waiting ones start together. */
static void user_teardown(Engine *E, vuser_t *u, int64_t now) {
    program_t *P = E->prog;
    int last = ++E->users_ended == E->nconns;
    if (last) E->drained_ns = now;
    if (!u->setup_done || !P->nteardown || __atomic_load_n(&E->stop_flag, __ATOMIC_RELAXED))
        user_finish(E, u);
    else
        u->mode = U_TEARDOWN_WAIT;
    if (!last) return;
    for (int i = 0; i < E->nconns; i++)
        if (E->vu[i].mode == U_TEARDOWN_WAIT) teardown_start(E, &E->vu[i], now);
}

static void teardown_start(Engine *E, vuser_t *u, int64_t now) {
    program_t *P = E->prog;
    u->mode = U_TEARDOWN;
    u->phase = PH_WARMUP;
    u->list = P->teardown;
    u->nlist = P->nteardown;
    u->pos = 0;
    u->polling = 0;
    u->teardown_until = now + E->timeout_ns;
    vars_reset(E, u);
    draw_uuid(E, u->cur, P->uuid_slot); /* the teardown's own {uuid}, as the Python driver's */
    step_send(E, u, now);
}

/* Open model: the user is free again; it takes the next queued arrival, else waits
 * (idle, or without a socket), or ends with its teardown once no arrival will come. */
static void user_release(Engine *E, vuser_t *u, int64_t now, int err) {
    conn_t *c = conn_of(E, u);
    u->mode = U_FREE;
    if (E->sched_done && E->qlen == 0) {
        user_teardown(E, u, now);
        return;
    }
    if (err < 0 && c->fd >= 0) {
        qitem *it;
        while ((it = qfront(E)) != NULL && now - it->intended > E->timeout_ns) {
            drop(E, it->ep, (int)it->phase, now);
            qpop(E);
        }
        if (it) {
            qitem copy = *it;
            qpop(E);
            start_iteration(E, u, copy.ep, copy.intended, (int)copy.phase, now);
            return;
        }
    }
    /* after an error the main loop hands queued arrivals out: no recursion here */
    if (c->fd >= 0)
        idle_push(E, c);
    else
        E->free_slots[E->nfree++] = (int32_t)(c - E->conns);
}

/* Closed model: the user's next iteration is intended at `due`. */
static void closed_iteration(Engine *E, vuser_t *u, int64_t due, int64_t now) {
    program_t *P = E->prog;
    if (!closed_may_send(E, due)) {
        user_teardown(E, u, now);
        return;
    }
    if (!u->setup_done && P->nsetup) { /* setup first; the iteration's clock starts after it */
        start_iteration(E, u, 0, due, PH_WARMUP, now);
        return;
    }
    int phase = due < E->measure_ns ? PH_WARMUP : PH_MEASURED;
    if (phase == PH_MEASURED) E->measured_issued++;
    uint32_t j = wrr_next(&P->mix, E->rng);
    if (now - due > E->late_ns) E->eps[P->journeys[j].steps[0]].c[phase].behind++;
    start_iteration(E, u, j, due, phase, now);
}

/* The iteration ended (err: -1 passed, else the error kind of the step that failed it). */
static void user_next(Engine *E, vuser_t *u, int64_t now, int err) {
    if (!E->closed) {
        user_release(E, u, now, err);
        return;
    }
    int64_t d = E->think_ns;
    if ((err == E_REFUSED || err == E_CONNECT) && d == 0) d = CONNECT_ERROR_PAUSE_NS;
    if (!closed_may_send(E, now + d)) {
        user_teardown(E, u, now);
        return;
    }
    u->timer_iter = 1;
    heap_push(E, u, now + d);
}

/* Closed model: one more user's setup is over for good; with the last, the warm-up starts,
 * and the measured phase after it. */
static void setup_over(Engine *E, int64_t now) {
    if (E->setups_pending <= 0 || --E->setups_pending > 0) return;
    E->setups_ended_ns = now;
    E->measure_ns = now + E->warmup_ns; /* the warm-up lets the system settle after the setups */
    E->S.base_ns = E->measure_ns;
    E->end_ns = E->duration_s > 0 ? E->measure_ns + (int64_t)(E->duration_s * 1e9) : INT64_MAX;
}

static void setup_ended(Engine *E, vuser_t *u, int64_t now, int err) {
    program_t *P = E->prog;
    if (err < 0 && vars_commit(E, u) == 0) {
        u->setup_done = 1;
        E->users_set_up++;
        if (E->closed) setup_over(E, now);
        if (!E->closed) {
            start_iteration(E, u, u->pending_journey, now, u->pending_phase, now);
            return;
        }
        if (!closed_may_send(E, now)) {
            user_teardown(E, u, now);
            return;
        }
        int phase = now < E->measure_ns ? PH_WARMUP : PH_MEASURED;
        if (phase == PH_MEASURED) E->measured_issued++;
        start_iteration(E, u, wrr_next(&P->mix, E->rng), now, phase, now);
        return;
    }
    E->setup_failures++;
    if (!E->closed) { /* the arrival that took this user fails with its setup */
        jcount *k = &P->journeys[u->pending_journey].k[u->pending_phase];
        k->started++;
        k->completed++;
        k->failed++;
        k->failed_setup++;
        user_release(E, u, now, err < 0 ? E_ASSERT : err);
        return;
    }
    /* closed: the user tries its setup again after a backoff, a bounded number of times */
    if (++u->setup_attempts >= P->setup_attempts) {
        E->setups_given_up++;
        setup_over(E, now);
        user_teardown(E, u, now); /* not set up: no teardown, but it counts as ended */
        return;
    }
    /* doubling from SETUP_BACKOFF_NS up to SETUP_BACKOFF_MAX_NS; the shift stays small (up to
     * 99 attempts would overflow it) */
    int64_t d = SETUP_BACKOFF_NS;
    for (int k = 1; k < u->setup_attempts && d < SETUP_BACKOFF_MAX_NS; k++) d *= 2;
    if (d > SETUP_BACKOFF_MAX_NS) d = SETUP_BACKOFF_MAX_NS;
    /* an attempt that took long to fail (a timeout) left the server busy with it: wait at
     * least as long before adding another */
    if (now - u->started > d) d = now - u->started;
    d = (int64_t)((double)d * (0.5 + 0.5 * rng_unit(E->rng)));
    if (d < E->think_ns) d = E->think_ns;
    if (!closed_may_send(E, now + d)) {
        user_teardown(E, u, now);
        return;
    }
    u->mode = U_ITER;
    u->timer_iter = 1;
    heap_push(E, u, now + d);
}

static void set_builtins(Engine *E, vuser_t *u, uint64_t iteration) {
    program_t *P = E->prog;
    draw_uuid(E, u->cur, P->uuid_slot);
    /* the n-th iteration of this engine: distinct across workers (each its own offset) */
    if (P->iter_slot >= 0)
        set_decimal(&u->cur[P->iter_slot], iteration ? (iteration - 1) * P->iter_stride + P->iter_offset + 1 : 0);
}

/* Start an iteration of journey j (or, for a user not set up yet, its setup first). */
static void start_iteration(Engine *E, vuser_t *u, uint32_t j, int64_t intended, int phase, int64_t now) {
    program_t *P = E->prog;
    u->polling = 0;
    u->pos = 0;
    if (!u->setup_done && P->nsetup) {
        u->pending = intended;
        u->pending_phase = (uint8_t)phase;
        u->pending_journey = j;
        u->mode = U_SETUP;
        u->phase = PH_WARMUP;
        u->list = P->setup;
        u->nlist = P->nsetup;
        u->started = now; /* the attempt's: a retry waits at least as long as it took */
        vars_reset(E, u);
        set_builtins(E, u, 0);
        /* each attempt draws it anew: a retried sign-up must not reuse an address taken by
         * the attempt that failed after it (the Python driver draws a {uuid} per attempt) */
        draw_uuid(E, u->cur, P->user_uuid_slot);
        step_send(E, u, now);
        return;
    }
    if (!u->setup_done) { /* no setup: the user's UUID is drawn at its first iteration */
        u->setup_done = 1;
        draw_uuid(E, u->base, P->user_uuid_slot);
    }
    pjourney_t *J = &P->journeys[j];
    u->mode = U_ITER;
    u->journey = j;
    u->phase = (uint8_t)phase;
    u->intended = intended;
    u->started = now;
    u->list = J->steps;
    u->nlist = J->nsteps;
    vars_reset(E, u);
    set_builtins(E, u, ++J->count);
    J->k[phase].started++;
    step_send(E, u, now);
}

/* The current step has its outcome (err: -1 success, else its error kind). */
static void step_done(Engine *E, vuser_t *u, int64_t now, int err) {
    program_t *P = E->prog;
    uint32_t ep = u->list[u->pos];
    int64_t think = P->steps[ep].think_ns;
    switch (u->mode) {
    case U_ITER: {
        pjourney_t *J = &P->journeys[u->journey];
        jcount *k = &J->k[u->phase];
        if (err >= 0) {
            k->completed++;
            k->failed++;
            if (u->phase == PH_MEASURED) J->failed_by_step[u->pos]++;
            user_next(E, u, now, err);
            return;
        }
        if (++u->pos == u->nlist) {
            k->completed++;
            k->passed++;
            if (u->phase == PH_MEASURED) {
                J->hcorr[hindex(&L_MAIN, (now - u->intended) / 1000)]++;
                J->hunc[hindex(&L_MAIN, (now - u->started) / 1000)]++;
            }
            user_next(E, u, now, -1);
            return;
        }
        break;
    }
    case U_SETUP:
        if (err >= 0 || ++u->pos == u->nlist) {
            setup_ended(E, u, now, err);
            return;
        }
        break;
    case U_TEARDOWN:
        if (err >= 0 || ++u->pos == u->nlist) {
            user_finish(E, u);
            return;
        }
        break;
    default:
        return;
    }
    if (think > 0) {
        u->timer_iter = 0;
        heap_push(E, u, now + think);
    } else {
        step_send(E, u, now);
    }
}

/* A response to a step's request is complete. */
static void prog_complete(Engine *E, conn_t *c, int64_t now) {
    program_t *P = E->prog;
    vuser_t *u = user_of(E, c);
    endpoint *e = &E->eps[c->ep];
    const pstep_t *st = &P->steps[c->ep];
    int phase = c->phase;
    int final = !st->poll || now + st->poll_every_ns >= u->poll_until;
    if (st->cookies) take_cookies(u);
    int err = x_judge(E, e, c, final);
    int again = err >= 0 && !final;
    if (err < 0 && st->nex) {
        char why[WHY_MAX];
        why[0] = 0;
        if (extract_all(E, c, u, st, why) < 0) {
            err = E_ASSERT;
            if (c->flags & F_KEEP)
                x_keep(e->x, E->xs[c - E->conns], c->status, E_ASSERT, XF_EXTRACT, 0, why, strlen(why));
        }
    }
    x_release(E, c);
    busy_remove(E, c);
    c->nreq++;
    if (c->flags & F_CLOSE || c->state == C_WRITING)
        conn_close(E, c);
    else
        c->state = C_IDLE;
    if (again) { /* a poll not yet satisfied: the same request again after its interval */
        u->polling = 1;
        u->timer_iter = 0;
        heap_push(E, u, now + st->poll_every_ns);
        return;
    }
    u->polling = 0;
    counters *k = &e->c[phase];
    k->responses++;
    int s = c->status;
    if (s >= 0 && s < NSTATUS) e->status[phase][s]++;
    if (err >= 0) k->errors[err]++;
    if (phase == PH_MEASURED) {
        int64_t corr = (now - c->intended) / 1000, unc = (now - c->sent) / 1000;
        e->hcorr[hindex(&L_MAIN, corr)]++;
        e->hunc[hindex(&L_MAIN, unc)]++;
        series_response(E, c->ep, err, corr, now);
    }
    step_done(E, u, now, err);
}

/* A step's request failed without a complete response (already counted by fail()). */
static void prog_after(Engine *E, conn_t *c, int64_t now, int err) {
    vuser_t *u = user_of(E, c);
    u->polling = 0;
    step_done(E, u, now, err);
}

/* Open model: an arrival takes a free user (one with an idle socket first). */
static int prog_dispatch(Engine *E, uint32_t j, int64_t intended, int phase, int64_t now) {
    conn_t *c = idle_pop(E);
    if (!c) {
        if (E->nfree == 0) return 0;
        c = &E->conns[E->free_slots[--E->nfree]];
    }
    start_iteration(E, user_of(E, c), j, intended, phase, now);
    return 1;
}

/* Open model, schedule done and nothing queued: every free user runs its teardown. */
static void teardown_free_users(Engine *E, int64_t now) {
    E->teardown_begun = 1;
    for (int i = 0; i < E->nconns; i++) {
        vuser_t *u = &E->vu[i];
        if (u->mode != U_FREE) continue;
        conn_t *c = &E->conns[i];
        if (c->state == C_IDLE) idle_remove(E, c);
        u->mode = U_DONE; /* not free any more: teardown or done */
        user_teardown(E, u, now);
    }
    E->nfree = 0;
}

/* The user's timer is due: its next iteration, or its current step (after a think time
 * or a poll's interval). */
static void user_timer(Engine *E, vuser_t *u, int64_t due, int64_t now) {
    if (u->timer_iter) {
        u->timer_iter = 0;
        int64_t lag = now - due;
        if (lag > E->max_lag_ns) E->max_lag_ns = lag;
        if (due >= E->measure_ns) {
            secrec *r = series_at(&E->S, now);
            if (lag > r->max_lag_ns) r->max_lag_ns = lag;
        }
        closed_iteration(E, u, due, now);
        return;
    }
    step_send(E, u, now);
}

/* ------------------------------------------------------------------------- */
/* Response parsing                                                           */
/* ------------------------------------------------------------------------- */

/* Parse a complete header block [h, h+len) ending in an empty line.
 * Returns 1: final response headers, 2: interim (1xx) response, -1: error. */
static int parse_headers(Engine *E, conn_t *c, const char *h, size_t len) {
    if (len < 13 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ') return -1;
    int minor = h[7] - '0';
    if (h[9] < '0' || h[9] > '9' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9') return -1;
    int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    if (h[12] != ' ' && h[12] != '\r' && h[12] != '\n') return -1;
    const char *end = h + len;
    const char *p = memchr(h, '\n', len);
    if (!p) return -1;
    p++;
    int64_t clen = -1;
    int chunked = 0, close_conn = minor < 1;
    const expect_t *x = c->flags & F_X ? E->eps[c->ep].x : NULL;
    uint32_t found = 0; /* expected headers found with their text */
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) break;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (ll == 0) break; /* the empty line */
        const char *colon = memchr(p, ':', ll);
        if (colon) {
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1, *ve = p + ll;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t vl = (size_t)(ve - v);
            if (nl == 14 && ieq(p, "content-length", 14)) {
                if (vl == 0 || vl > 18) return -1;
                int64_t n = 0;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9') return -1;
                    n = n * 10 + (v[i] - '0');
                }
                clen = n;
            } else if (nl == 17 && ieq(p, "transfer-encoding", 17)) {
                chunked = contains_ci(v, vl, "chunked");
            } else if (nl == 10 && ieq(p, "connection", 10)) {
                if (contains_ci(v, vl, "close"))
                    close_conn = 1;
                else if (contains_ci(v, vl, "keep-alive"))
                    close_conn = 0;
            }
            if (x)
                for (int k = 0; k < x->nheaders; k++) {
                    const xheader *xh = &x->headers[k];
                    if (xh->nlen != nl || !ieq(p, xh->name, nl)) continue;
                    if (xh->how == H_ABSENT || (xh->how == H_EQUALS && vl == xh->len && memcmp(v, xh->needle, vl) == 0) ||
                        (xh->how == H_CONTAINS && (!xh->len || memmem(v, vl, xh->needle, xh->len))))
                        found |= 1u << k;
                }
        }
        p = eol + 1;
    }
    if (status >= 100 && status < 200) {
        if (status == 101) return -1; /* no protocol upgrades */
        return 2;
    }
    c->status = status;
    if (E->prog && E->prog->steps[c->ep].need_head) keep_head(&E->vu[c - E->conns], h, len);
    if (close_conn) c->flags |= F_CLOSE;
    if (x) x_head(E, c, h, len, found);
    if ((c->flags & F_HEAD) || status == 204 || status == 304) {
        c->pstate = P_HEAD; /* no body; caller sees done */
        c->remaining = 0;
        return 1;
    }
    if (chunked) {
        c->pstate = P_CHUNK_SIZE;
        c->remaining = 0;
        c->digits = 0;
    } else if (clen >= 0) {
        c->pstate = P_BODY;
        c->remaining = clen;
    } else {
        c->pstate = P_UNTIL_CLOSE; /* body ends when the server closes */
        c->flags |= F_CLOSE;
    }
    return 1;
}

static const char *find_head_end(const char *p, size_t n) {
    /* memchr for '\n' is fast; look for "\r\n\r\n" around each one. */
    const char *end = p + n, *s = p;
    while (s < end) {
        const char *lf = memchr(s, '\n', (size_t)(end - s));
        if (!lf) return NULL;
        if (lf + 2 < end + 0 && lf[1] == '\r' && lf[2] == '\n' && lf > p && lf[-1] == '\r') return lf - 1;
        s = lf + 1;
    }
    return NULL;
}

/* Body bytes to whoever reads them: the expectations, the stream's event scanner. */
static inline void body_bytes(Engine *E, conn_t *c, const char *d, size_t n) {
    if (c->flags & F_XBODY) x_body(E, c, d, n);
    if (c->flags & F_STREAM) s_body(E, c, d, n);
}

/* Feed n bytes to the parser. On PARSE_DONE, *extra is the number of bytes left
 * over after the response. */
static int parse(Engine *E, conn_t *c, const char *d, size_t n, size_t *extra) {
    size_t i = 0;
    for (;;) {
        switch (c->pstate) {
        case P_HEAD: {
            if (i >= n) return PARSE_NEED;
            const char *hs;
            size_t hl, used;
            if (c->hlen == 0) {
                const char *e = find_head_end(d + i, n - i);
                if (!e) {
                    /* partial header block: keep it (rare) */
                    size_t take = n - i;
                    if (take > MAX_HEAD) return PARSE_ERROR;
                    if (take > c->hcap) {
                        char *nb = realloc(c->hbuf, MAX_HEAD + 4);
                        if (!nb) return PARSE_ERROR;
                        c->hbuf = nb;
                        c->hcap = MAX_HEAD + 4;
                    }
                    memcpy(c->hbuf, d + i, take);
                    c->hlen = (uint32_t)take;
                    return PARSE_NEED;
                }
                hs = d + i;
                hl = (size_t)(e + 4 - hs);
                used = hl;
            } else {
                size_t old = c->hlen;
                size_t room = MAX_HEAD + 4 - old;
                size_t take = n - i < room ? n - i : room;
                if (c->hcap < MAX_HEAD + 4) {
                    char *nb = realloc(c->hbuf, MAX_HEAD + 4);
                    if (!nb) return PARSE_ERROR;
                    c->hbuf = nb;
                    c->hcap = MAX_HEAD + 4;
                }
                memcpy(c->hbuf + old, d + i, take);
                size_t from = old > 3 ? old - 3 : 0;
                const char *e = find_head_end(c->hbuf + from, old + take - from);
                if (!e) {
                    c->hlen = (uint32_t)(old + take);
                    if (c->hlen > MAX_HEAD) return PARSE_ERROR;
                    return PARSE_NEED;
                }
                hs = c->hbuf;
                hl = (size_t)(e + 4 - hs);
                used = hl - old;
            }
            c->hlen = 0;
            /* the limit whatever the reads: a block found whole in one read (up to READ_BUF)
             * is judged as one that arrived in pieces (the fuzzer's differential check) */
            if (hl > MAX_HEAD) return PARSE_ERROR;
            int r = parse_headers(E, c, hs, hl);
            i += used;
            if (r < 0) return PARSE_ERROR;
            if (r == 2) continue; /* interim response: the real one follows */
            if (c->pstate == P_HEAD || (c->pstate == P_BODY && c->remaining == 0)) {
                *extra = n - i;
                return PARSE_DONE;
            }
            continue;
        }
        case P_BODY: {
            size_t avail = n - i;
            if ((int64_t)avail < c->remaining) {
                if (c->flags & (F_XBODY | F_STREAM)) body_bytes(E, c, d + i, avail);
                c->remaining -= (int64_t)avail;
                return PARSE_NEED;
            }
            if (c->flags & (F_XBODY | F_STREAM)) body_bytes(E, c, d + i, (size_t)c->remaining);
            i += (size_t)c->remaining;
            c->remaining = 0;
            *extra = n - i;
            return PARSE_DONE;
        }
        case P_UNTIL_CLOSE:
            if (c->flags & (F_XBODY | F_STREAM)) body_bytes(E, c, d + i, n - i);
            return PARSE_NEED;
        case P_CHUNK_DATA: {
            size_t avail = n - i;
            if ((int64_t)avail < c->remaining) {
                if (c->flags & (F_XBODY | F_STREAM)) body_bytes(E, c, d + i, avail);
                c->remaining -= (int64_t)avail;
                return PARSE_NEED;
            }
            if (c->flags & (F_XBODY | F_STREAM)) body_bytes(E, c, d + i, (size_t)c->remaining);
            i += (size_t)c->remaining;
            c->remaining = 0;
            c->pstate = P_CHUNK_DATA_CR;
            if (c->flags & F_STREAM) s_chunk_end(E, c);
            continue;
        }
        default:
            break;
        }
        /* the byte-at-a-time states of chunked framing (short lines only) */
        if (i >= n) return PARSE_NEED;
        char ch = d[i++];
        switch (c->pstate) {
        case P_CHUNK_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > 15) return PARSE_ERROR;
                c->remaining = c->remaining * 16 + v;
            } else if (c->digits == 0) {
                return PARSE_ERROR;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->pstate = P_CHUNK_EXT;
            } else if (ch == '\r') {
                c->pstate = P_CHUNK_SIZE_LF;
            } else if (ch == '\n') {
                goto chunk_size_done;
            } else {
                return PARSE_ERROR;
            }
            break;
        }
        case P_CHUNK_EXT:
            if (ch == '\r')
                c->pstate = P_CHUNK_SIZE_LF;
            else if (ch == '\n')
                goto chunk_size_done;
            break;
        case P_CHUNK_SIZE_LF:
            if (ch != '\n') return PARSE_ERROR;
        chunk_size_done:
            c->digits = 0;
            c->pstate = c->remaining == 0 ? P_TRAILER_START : P_CHUNK_DATA;
            break;
        case P_CHUNK_DATA_CR:
            if (ch == '\r')
                c->pstate = P_CHUNK_DATA_LF;
            else if (ch == '\n')
                c->pstate = P_CHUNK_SIZE;
            else
                return PARSE_ERROR;
            break;
        case P_CHUNK_DATA_LF:
            if (ch != '\n') return PARSE_ERROR;
            c->pstate = P_CHUNK_SIZE;
            break;
        case P_TRAILER_START:
            if (ch == '\r') {
                c->pstate = P_TRAILER_END_LF;
            } else if (ch == '\n') {
                *extra = n - i;
                return PARSE_DONE;
            } else {
                c->pstate = P_TRAILER_LINE;
            }
            break;
        case P_TRAILER_LINE:
            if (ch == '\n') c->pstate = P_TRAILER_START;
            break;
        case P_TRAILER_END_LF:
            if (ch != '\n') return PARSE_ERROR;
            *extra = n - i;
            return PARSE_DONE;
        default:
            return PARSE_ERROR;
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Socket events                                                              */
/* ------------------------------------------------------------------------- */

/* An idle connection got bytes nobody asked for, EOF or an error: close it. An idle
 * socket of the open model is listed (program mode: only a free user's). */
static void idle_drop(Engine *E, conn_t *c) {
    int listed = !E->closed && (!E->prog || E->vu[c - E->conns].mode == U_FREE);
    if (listed) idle_remove(E, c);
    conn_close(E, c);
    if (listed && E->prog) E->free_slots[E->nfree++] = (int32_t)(c - E->conns);
}

static void on_readable(Engine *E, conn_t *c) {
    for (;;) {
        ssize_t n = recv(c->fd, E->buf, READ_BUF, 0);
        if (n > 0) {
            if (c->state == C_IDLE) { /* bytes nobody asked for: the connection can't be trusted */
                idle_drop(E, c);
                return;
            }
            c->flags |= F_GOT;
            if (c->flags & F_STREAM) E->read_ns = mono_ns();
            size_t extra = 0;
            int r = parse(E, c, E->buf, (size_t)n, &extra);
            if (r == PARSE_ERROR) {
                fail(E, c, E_PROTOCOL, mono_ns());
                return;
            }
            if (r == PARSE_DONE) {
                if (extra) c->flags |= F_CLOSE; /* more than one response: desync */
                complete(E, c, mono_ns());
                return;
            }
            if ((size_t)n < READ_BUF) return; /* level-triggered: epoll tells when more arrives */
            continue;
        }
        if (n == 0) {
            if (c->state == C_IDLE) {
                idle_drop(E, c);
                return;
            }
            int64_t now = mono_ns();
            if (c->pstate == P_UNTIL_CLOSE) {
                complete(E, c, now);
                return;
            }
            retry_or_fail(E, c, E_CLOSED, now);
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (c->state == C_IDLE) {
            idle_drop(E, c);
            return;
        }
        retry_or_fail(E, c, E_RESET, mono_ns());
        return;
    }
}

static void on_event(Engine *E, conn_t *c, uint32_t ev) {
    if (c->state == C_FREE) return; /* closed earlier in this batch */
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err) {
            fail(E, c, err == ECONNREFUSED ? E_REFUSED : E_CONNECT, mono_ns());
            return;
        }
        if (!(ev & EPOLLOUT)) return;
        struct epoll_event mod = {.events = EPOLLIN, .data.u64 = EVDATA(E, c)};
        epoll_ctl(E->epfd, EPOLL_CTL_MOD, c->fd, &mod);
        c->state = C_READING;
        send_request(E, c, mono_ns());
        return;
    }
    if ((ev & EPOLLOUT) && c->state == C_WRITING) {
        send_request(E, c, mono_ns());
        if (c->state == C_FREE || c->state == C_CONNECTING) return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(E, c);
}

/* ------------------------------------------------------------------------- */
/* Schedule (open model)                                                      */
/* ------------------------------------------------------------------------- */

static double stage_count(const stage_t *s) {
    if (isinf(s->dur)) return INFINITY;
    return s->dur * (s->r0 + s->r1) / 2.0;
}

/* Time (ns from run start) of the arrival at operational time n: invert the
 * cumulative arrival count N(t) = r0 t + (r1 - r0) t^2 / (2 d) of the stage. */
static int64_t arrival_at(Engine *E, double n) {
    while (E->stage_i < E->nstages) {
        stage_t *s = &E->stages[E->stage_i];
        double cnt = stage_count(s);
        if (n < s->cum0 + cnt) break;
        E->stage_i++;
    }
    if (E->stage_i >= E->nstages) return -1;
    stage_t *s = &E->stages[E->stage_i];
    double m = n - s->cum0, t;
    if (m <= 0) {
        t = 0;
    } else if (s->r0 == s->r1 || isinf(s->dur)) {
        t = m / s->r0;
    } else {
        double a = (s->r1 - s->r0) / (2.0 * s->dur);
        double disc = s->r0 * s->r0 + 4.0 * a * m;
        if (disc < 0) disc = 0;
        t = 2.0 * m / (s->r0 + sqrt(disc)); /* stable form of the quadratic root */
        if (t > s->dur) t = s->dur;
    }
    return (int64_t)((s->t0 + t) * 1e9);
}

static void schedule_next(Engine *E) {
    if (E->poisson) E->n_next += -log1p(-rng_unit(E->rng));
    else E->n_next += 1.0;
    int64_t t = arrival_at(E, E->n_next);
    if (t < 0 || E->start_ns + t >= E->end_ns)
        E->sched_done = 1;
    else
        E->next_arrival = E->start_ns + t;
}

/* ------------------------------------------------------------------------- */
/* The run                                                                    */
/* ------------------------------------------------------------------------- */

static void count_unfinished(Engine *E) {
    for (int i = 0; i < E->nconns; i++) {
        conn_t *c = &E->conns[i];
        if (c->state == C_CONNECTING || c->state == C_WRITING || c->state == C_READING)
            E->eps[c->ep].c[c->phase].unfinished++;
        else if (E->prog && E->vu[i].polling) /* a poll between two attempts: sent, no outcome */
            E->eps[E->vu[i].list[E->vu[i].pos]].c[E->vu[i].phase].unfinished++;
    }
    qitem *it;
    while ((it = qfront(E)) != NULL) {
        E->eps[E->prog ? E->prog->journeys[it->ep].steps[0] : it->ep].c[it->phase].unsent++;
        qpop(E);
    }
}

static void totals(Engine *E, int phase, counters *out) {
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < E->nep; i++) {
        counters *k = &E->eps[i].c[phase];
        out->sent += k->sent;
        out->responses += k->responses;
        out->late += k->late;
        out->dropped += k->dropped;
        out->behind += k->behind;
        for (int j = 0; j < NERR; j++) out->errors[j] += k->errors[j];
    }
}

static PyObject *sparse_bytes(series_t *S, size_t off, size_t len) {
    return len ? PyBytes_FromStringAndSize((const char *)(S->sparse + 2 * off), (Py_ssize_t)(len * 2 * sizeof(uint32_t)))
               : PyBytes_FromStringAndSize("", 0);
}

static PyObject *series_record_dict(series_t *S, secrec *r) {
    PyObject *errs = PyTuple_New(NERR);
    if (!errs) return NULL;
    for (int j = 0; j < NERR; j++) PyTuple_SET_ITEM(errs, j, PyLong_FromUnsignedLongLong(r->errors[j]));
    PyObject *hist = sparse_bytes(S, r->hoff, r->hlen);
    PyObject *pending = sparse_bytes(S, r->poff, r->plen);
    if (!hist || !pending) {
        Py_DECREF(errs);
        Py_XDECREF(hist);
        Py_XDECREF(pending);
        return NULL;
    }
    return Py_BuildValue("{s:L,s:d,s:K,s:K,s:K,s:K,s:N,s:L,s:N,s:N}", "second", (long long)r->second, "span", r->span,
                         "sent", (unsigned long long)r->sent, "responses", (unsigned long long)r->responses,
                         "late", (unsigned long long)r->late, "dropped", (unsigned long long)r->dropped, "errors",
                         errs, "max_lag_us", (long long)(r->max_lag_ns / 1000), "hist", hist, "pending", pending);
}

static PyObject *record_dict(Engine *E, secrec *r) { return series_record_dict(&E->S, r); }

/* The endpoints' records as (endpoint index, record) pairs, in endpoint order: all of them, or
 * with `mark` (progress) those not delivered yet, which then are. */
static PyObject *endpoint_records(Engine *E, int mark) {
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (uint32_t i = 0; E->SE && i < E->nep; i++) {
        series_t *es = E->SE[i];
        if (!es) continue;
        for (size_t k = mark ? es->delivered : 0; k < es->n; k++) {
            PyObject *d = series_record_dict(es, &es->recs[k]);
            PyObject *pair = d ? Py_BuildValue("(IN)", (unsigned int)i, d) : NULL;
            if (!pair || PyList_Append(out, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(pair);
        }
        if (mark) es->delivered = es->n;
    }
    return out;
}

static PyObject *counters_dict(counters *k) {
    PyObject *errs = PyTuple_New(NERR);
    if (!errs) return NULL;
    for (int j = 0; j < NERR; j++) PyTuple_SET_ITEM(errs, j, PyLong_FromUnsignedLongLong(k->errors[j]));
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:N}", "sent", (unsigned long long)k->sent, "responses",
                         (unsigned long long)k->responses, "late", (unsigned long long)k->late, "dropped",
                         (unsigned long long)k->dropped, "behind", (unsigned long long)k->behind, "unfinished",
                         (unsigned long long)k->unfinished, "unsent", (unsigned long long)k->unsent, "errors", errs);
}

/* With the GIL held: the progress snapshot for the wall second just completed. */
static PyObject *progress_dict(Engine *E, int64_t now) {
    counters m, w;
    totals(E, PH_MEASURED, &m);
    totals(E, PH_WARMUP, &w);
    PyObject *recs = PyList_New(0);
    if (!recs) return NULL;
    for (; E->S.delivered < E->S.n; E->S.delivered++) {
        PyObject *d = record_dict(E, &E->S.recs[E->S.delivered]);
        if (!d || PyList_Append(recs, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(recs);
            return NULL;
        }
        Py_DECREF(d);
    }
    PyObject *d = Py_BuildValue("{s:d,s:N,s:N,s:N,s:N,s:i,s:n,s:O}", "elapsed", (double)(now - E->start_ns) / 1e9,
                                "measured", counters_dict(&m), "warmup", counters_dict(&w), "records", recs,
                                "endpoint_records", endpoint_records(E, 1), "open_connections", E->nopen, "queued",
                                (Py_ssize_t)E->qlen, "in_warmup", now < E->measure_ns ? Py_True : Py_False);
    /* the measured phase's own clock (it may start past the warm-up: see setups_pending) */
    PyObject *ms = PyFloat_FromDouble(now >= E->measure_ns ? (double)(now - E->measure_ns) / 1e9 : -1.0);
    if (d && (!ms || PyDict_SetItemString(d, "measured_s", ms) < 0)) Py_CLEAR(d);
    Py_XDECREF(ms);
    if (!d || !E->prog) return d;
    /* program mode: what the Python driver's progress line says (a slow setup, a password
     * hash per user, can take most of a run: "0 iterations done" alone would hide it) */
    program_t *P = E->prog;
    uint64_t done[2] = {0, 0}, started = 0, setting_up = 0;
    for (uint32_t j = 0; j < P->njourneys; j++)
        for (int ph = 0; ph < 2; ph++) {
            done[ph] += P->journeys[j].k[ph].completed;
            started += P->journeys[j].k[ph].started;
        }
    for (int i = 0; i < E->nconns; i++) setting_up += E->vu[i].mode == U_SETUP;
    /* in flight, as the Python driver counts: iterations started and not ended; in the open
     * model also the arrivals waiting for their user's setup (closed: a setup is no iteration) */
    PyObject *j = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:O}", "users", (unsigned long long)E->nconns,
                                "setups_given_up", (unsigned long long)E->setups_given_up, "completed",
                                (unsigned long long)done[PH_MEASURED],
                                "warmup_completed", (unsigned long long)done[PH_WARMUP], "in_flight",
                                (unsigned long long)(started - done[0] - done[1] + (E->closed ? 0 : setting_up)), "users_set_up",
                                (unsigned long long)E->users_set_up, "setting_up", (unsigned long long)setting_up,
                                "setup_failures", (unsigned long long)E->setup_failures, "has_setup",
                                P->nsetup ? Py_True : Py_False);
    if (!j || PyDict_SetItemString(d, "journeys", j) < 0) {
        Py_XDECREF(j);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(j);
    return d;
}

/* Every TICK_NS: with the GIL briefly re-acquired, signals, should_stop and, once
 * per wall second, progress. Returns -1 when the run must stop on an exception. */
static int tick(Engine *E, int64_t now) {
    if (now >= E->measure_ns) series_at(&E->S, now);
    int rc = 0;
    PyEval_RestoreThread(E->tstate);
    if (PyErr_CheckSignals() < 0) {
        E->stopped = "signal";
        rc = -1;
    } else if (E->stop_cb) {
        PyObject *r = PyObject_CallNoArgs(E->stop_cb);
        if (!r) {
            E->stopped = "error";
            rc = -1;
        } else {
            int t = PyObject_IsTrue(r);
            Py_DECREF(r);
            if (t < 0) {
                E->stopped = "error";
                rc = -1;
            } else if (t) {
                __atomic_store_n(&E->stop_flag, 1, __ATOMIC_RELAXED);
            }
        }
    }
    if (rc == 0 && E->progress_cb && now >= E->next_progress) {
        while (E->next_progress <= now) E->next_progress += NS_PER_S;
        PyObject *d = progress_dict(E, now);
        PyObject *r = d ? PyObject_CallOneArg(E->progress_cb, d) : NULL;
        Py_XDECREF(d);
        if (!r) {
            E->stopped = "error";
            rc = -1;
        }
        Py_XDECREF(r);
    }
    if (rc < 0) PyErr_Fetch(&E->exc_type, &E->exc_value, &E->exc_tb);
    E->tstate = PyEval_SaveThread();
    return rc;
}

static int wait_events(Engine *E, struct epoll_event *evs, int64_t timeout_ns) {
    static int no_pwait2 = 0;
    if (!no_pwait2) {
        struct timespec ts = {.tv_sec = timeout_ns / NS_PER_S, .tv_nsec = timeout_ns % NS_PER_S};
        int n = epoll_pwait2(E->epfd, evs, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        no_pwait2 = 1; /* kernels before 5.11: millisecond timeouts */
    }
    int ms = (int)((timeout_ns + NS_PER_MS - 1) / NS_PER_MS);
    return epoll_wait(E->epfd, evs, MAX_EVENTS, ms);
}

static int run_loop(Engine *E) {
    struct epoll_event evs[MAX_EVENTS];
    int64_t now = mono_ns();
    E->start_ns = E->start_at_ns > now ? E->start_at_ns : now;
    E->measure_ns = E->start_ns + E->warmup_ns;
    E->S.base_ns = E->measure_ns;
    E->next_tick = now + TICK_NS;
    E->next_progress = E->start_ns + NS_PER_S;
    if (E->closed) {
        E->end_ns = E->duration_s > 0 ? E->measure_ns + (int64_t)(E->duration_s * 1e9) : INT64_MAX;
        if (E->prog && E->prog->nsetup && E->users > 0) { /* the measured phase waits for the setups */
            E->setups_pending = E->users;
            E->measure_ns = E->S.base_ns = E->end_ns = INT64_MAX;
        }
        for (int u = 0; u < E->users; u++) {
            if (!E->prog) {
                think_push(E, u, E->start_ns);
                continue;
            }
            E->vu[u].timer_iter = 1;
            heap_push(E, &E->vu[u], E->start_ns);
        }
    } else {
        double total = 0;
        for (int i = 0; i < E->nstages; i++) total += E->stages[i].dur;
        E->end_ns = isinf(total) ? INT64_MAX : E->start_ns + (int64_t)(total * 1e9);
        E->n_next = E->arrival_offset;
        if (E->poisson) E->n_next += -log1p(-rng_unit(E->rng));
        int64_t t = arrival_at(E, E->n_next);
        if (t < 0 || E->start_ns + t >= E->end_ns)
            E->sched_done = 1;
        else
            E->next_arrival = E->start_ns + t;
    }

    for (;;) {
        now = mono_ns();
        if (now >= E->next_tick) {
            E->next_tick = now + TICK_NS;
            if (tick(E, now) < 0) return -1;
        }
        if (__atomic_load_n(&E->stop_flag, __ATOMIC_RELAXED)) {
            if (!E->stopped) E->stopped = "stop";
            return 0;
        }

        /* due arrivals */
        if (!E->closed) {
            while (!E->sched_done && E->next_arrival <= now) {
                int64_t t = E->next_arrival;
                int phase = t < E->measure_ns ? PH_WARMUP : PH_MEASURED;
                if (phase == PH_MEASURED && E->max_requests && E->measured_issued >= E->max_requests) {
                    E->sched_done = 1;
                    break;
                }
                int64_t lag = now - t;
                if (lag > E->max_lag_ns) E->max_lag_ns = lag;
                if (phase == PH_MEASURED) {
                    secrec *r = series_at(&E->S, now);
                    if (lag > r->max_lag_ns) r->max_lag_ns = lag;
                    E->measured_issued++;
                }
                /* program mode: an arrival is an iteration of a journey (ep: its index) */
                uint32_t ep = E->prog ? wrr_next(&E->prog->mix, E->rng) : next_endpoint(E);
                uint32_t first = E->prog ? E->prog->journeys[ep].steps[0] : ep;
                /* The generator itself is behind schedule, as opposed to a request that will
                 * wait below for a connection the server still holds. */
                if (lag > E->late_ns) E->eps[first].c[phase].behind++;
                /* FIFO: nobody may overtake requests already waiting */
                if (E->qlen || !(E->prog ? prog_dispatch(E, ep, t, phase, now) : dispatch(E, ep, t, phase, now)))
                    enqueue(E, ep, t, phase, now);
                schedule_next(E);
            }
            if (E->qlen) drain_queue(E, now);
        } else if (!E->prog) {
            while (E->tqlen && E->tq[E->tqhead].due <= now) {
                titem it = E->tq[E->tqhead];
                E->tqhead = (E->tqhead + 1) % E->tqcap;
                E->tqlen--;
                if (!closed_may_send(E, it.due)) continue;
                int64_t lag = now - it.due;
                if (lag > E->max_lag_ns) E->max_lag_ns = lag;
                if (it.due >= E->measure_ns) {
                    secrec *r = series_at(&E->S, now);
                    if (lag > r->max_lag_ns) r->max_lag_ns = lag;
                }
                user_send(E, &E->conns[it.user], it.due, now);
            }
        }
        if (E->prog) {
            while (E->heaplen && E->heap[0].due <= now) {
                titem it = heap_pop(E);
                user_timer(E, &E->vu[it.user], it.due, now);
            }
            if (!E->closed && E->sched_done && E->qlen == 0 && !E->teardown_begun) teardown_free_users(E, now);
        }

        /* timeouts: the busy list is in deadline order */
        while (E->busy_head >= 0 && E->conns[E->busy_head].deadline <= now)
            fail(E, &E->conns[E->busy_head], E_TIMEOUT, now);

        /* done? */
        if (E->busy_head < 0) {
            if (E->prog) {
                if (E->heaplen == 0 && (E->closed || E->teardown_begun)) return 0;
            } else if (E->closed ? E->tqlen == 0 : (E->sched_done && E->qlen == 0)) {
                return 0;
            }
        }

        /* sleep until the next thing to do */
        int64_t wake = E->next_tick;
        if (!E->closed && !E->sched_done && E->next_arrival < wake) wake = E->next_arrival;
        if (E->closed && E->tqlen && E->tq[E->tqhead].due < wake) wake = E->tq[E->tqhead].due;
        if (E->heaplen && E->heap[0].due < wake) wake = E->heap[0].due;
        if (E->busy_head >= 0 && E->conns[E->busy_head].deadline < wake) wake = E->conns[E->busy_head].deadline;
        if (E->qlen) {
            int64_t exp = E->q[E->qhead].intended + E->timeout_ns + 1;
            if (exp < wake) wake = exp;
        }
        now = mono_ns();
        int64_t timeout = wake > now ? wake - now : 0;
        int n = wait_events(E, evs, timeout);
        if (n < 0 && errno != EINTR) {
            PyEval_RestoreThread(E->tstate);
            PyErr_SetFromErrno(PyExc_OSError);
            PyErr_Fetch(&E->exc_type, &E->exc_value, &E->exc_tb);
            E->tstate = PyEval_SaveThread();
            E->stopped = "error";
            return -1;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = &E->conns[(uint32_t)evs[i].data.u64];
            if ((uint32_t)(evs[i].data.u64 >> 32) != c->gen) continue; /* event of a socket closed in this batch */
            on_event(E, c, evs[i].events);
        }
    }
}

static void rusage_thread(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static PyObject *Engine_run(Engine *E, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"progress", "should_stop", "start_ns", NULL};
    PyObject *progress = Py_None, *should_stop = Py_None;
    long long start_ns = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOL:run", kwlist, &progress, &should_stop, &start_ns)) return NULL;
    if (E->ran) {
        PyErr_SetString(PyExc_RuntimeError, "an Engine runs once");
        return NULL;
    }
    if ((progress != Py_None && !PyCallable_Check(progress)) ||
        (should_stop != Py_None && !PyCallable_Check(should_stop))) {
        PyErr_SetString(PyExc_TypeError, "progress and should_stop must be callables or None");
        return NULL;
    }
    E->ran = 1;
    E->start_at_ns = start_ns;
    E->progress_cb = progress == Py_None ? NULL : progress;
    E->stop_cb = should_stop == Py_None ? NULL : should_stop;
    E->nconns = E->closed ? E->users : E->max_conn;
    E->conns = xcalloc((size_t)E->nconns, sizeof(conn_t));
    E->free_slots = xcalloc((size_t)E->nconns, sizeof(int32_t));
    E->buf = malloc(READ_BUF);
    E->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (E->closed && !E->prog) {
        E->tqcap = (size_t)E->users;
        E->tq = xcalloc(E->tqcap, sizeof(titem));
    }
    int checks = 0; /* some endpoint has expectations: per-connection state for them */
    for (uint32_t i = 0; i < E->nep; i++) checks |= E->eps[i].x != NULL;
    if (checks) E->xs = xcalloc((size_t)E->nconns, sizeof(xstate *));
    int streams = 0; /* some endpoint answers with a stream: per-connection scanner state */
    for (uint32_t i = 0; i < E->nep; i++) streams |= E->eps[i].st != NULL;
    if (streams) E->ss = xcalloc((size_t)E->nconns, sizeof(sstate));
    int prog_ok = 1;
    if (E->prog) {
        E->heap = xcalloc((size_t)E->nconns, sizeof(titem));
        prog_ok = E->heap && E->conns && users_init(E) == 0;
        uint64_t seed[4] = {0, 0, 0, 0};
        if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) { /* no entropy: time and pid */
            seed[0] = (uint64_t)mono_ns() ^ ((uint64_t)getpid() << 32);
            seed[1] = (uint64_t)time(NULL);
        }
        uint64_t sm = seed[0] ^ seed[1] ^ seed[2] ^ seed[3];
        for (int i = 0; i < 4; i++) E->urng[i] = splitmix64(&sm) ^ seed[i];
    }
    if (!E->conns || !E->free_slots || !E->buf || (E->closed && !E->prog && !E->tq) || (checks && !E->xs) ||
        (streams && !E->ss) || !prog_ok || series_init(&E->S) < 0 ||
        !(E->SE = xcalloc(E->nep, sizeof(series_t *)))) {
        if (E->epfd >= 0) close(E->epfd);
        E->epfd = -1;
        return PyErr_NoMemory();
    }
    if (E->epfd < 0) return PyErr_SetFromErrno(PyExc_OSError);
    for (int i = 0; i < E->nconns; i++) {
        E->conns[i].fd = -1;
        E->conns[i].prev = E->conns[i].next = -1;
    }
    for (int i = E->nconns - 1; i >= 0; i--) E->free_slots[E->nfree++] = i;
    E->busy_head = E->busy_tail = E->idle_head = -1;

    Py_INCREF(progress);
    Py_INCREF(should_stop);
    E->running = 1;
    /* Precise sleeps: the default 50 us timer slack would make every scheduled send late. */
    int old_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    double u0, s0, u1, s1;
    rusage_thread(&u0, &s0);
    E->tstate = PyEval_SaveThread();
    int rc = run_loop(E);
    int64_t end = mono_ns();
    if (E->stopped) count_unfinished(E);
    for (int i = 0; i < E->nconns; i++)
        if (E->conns[i].fd >= 0) {
            close(E->conns[i].fd);
            E->conns[i].fd = -1;
        }
    E->nopen = 0;
    close(E->epfd);
    E->epfd = -1;
    if (E->S.started || end >= E->measure_ns) {
        series_at(&E->S, end);
        series_finalize(&E->S, (double)(end - (E->S.base_ns + E->S.cur * NS_PER_S)) / 1e9, end);
    }
    if (E->measure_ns == INT64_MAX) E->measure_ns = end; /* stopped while setups ran: nothing measured */
    PyEval_RestoreThread(E->tstate);
    rusage_thread(&u1, &s1);
    if (old_slack > 0) prctl(PR_SET_TIMERSLACK, (unsigned long)old_slack, 0, 0, 0);
    E->cpu_user = u1 - u0;
    E->cpu_sys = s1 - s0;
    E->finish_ns = end;
    E->running = 0;
    for (int i = 0; i < E->nconns; i++) {
        free(E->conns[i].hbuf);
        E->conns[i].hbuf = NULL;
        if (E->xs && E->xs[i]) {
            free(E->xs[i]->buf);
            free(E->xs[i]);
        }
    }
    free(E->xs);
    E->xs = NULL;
    free(E->ss);
    E->ss = NULL;
    users_free(E);
    free(E->heap);
    E->heap = NULL;
    free(E->buf);
    E->buf = NULL;
    E->progress_cb = E->stop_cb = NULL;
    Py_DECREF(progress);
    Py_DECREF(should_stop);
    if (rc < 0) {
        PyErr_Restore(E->exc_type, E->exc_value, E->exc_tb);
        E->exc_type = E->exc_value = E->exc_tb = NULL;
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_stop(Engine *E, PyObject *Py_UNUSED(ignored)) {
    __atomic_store_n(&E->stop_flag, 1, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

/* (first nonzero index, bytes of uint64 counts up to the last nonzero one) */
static PyObject *hist_export(const uint64_t *h, int32_t len) {
    int32_t lo = 0, hi = len - 1;
    while (lo < len && !h[lo]) lo++;
    if (lo == len) return Py_BuildValue("(iy#)", 0, "", (Py_ssize_t)0);
    while (hi > lo && !h[hi]) hi--;
    return Py_BuildValue("(iy#)", lo, (const char *)(h + lo), (Py_ssize_t)((hi - lo + 1) * sizeof(uint64_t)));
}

static PyObject *status_dict(const uint64_t *st) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int i = 0; i < NSTATUS; i++) {
        if (!st[i]) continue;
        PyObject *k = PyLong_FromLong(i), *v = PyLong_FromUnsignedLongLong(st[i]);
        int rc = (k && v) ? PyDict_SetItem(d, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static PyObject *jcount_dict(const jcount *k) {
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K}", "started", (unsigned long long)k->started, "completed",
                         (unsigned long long)k->completed, "passed", (unsigned long long)k->passed, "failed",
                         (unsigned long long)k->failed, "failed_setup", (unsigned long long)k->failed_setup);
}

/* Per journey: the measured phase's iteration counts at the top level, the warm-up's apart. */
static PyObject *journeys_list(const program_t *P) {
    PyObject *list = PyList_New(P->njourneys);
    if (!list) return NULL;
    for (uint32_t i = 0; i < P->njourneys; i++) {
        const pjourney_t *J = &P->journeys[i];
        const jcount *m = &J->k[PH_MEASURED];
        PyObject *by = PyList_New(J->nsteps);
        PyObject *w = jcount_dict(&J->k[PH_WARMUP]);
        PyObject *hc = hist_export(J->hcorr, L_MAIN.counts_len), *hu = hist_export(J->hunc, L_MAIN.counts_len);
        if (by)
            for (uint32_t k = 0; k < J->nsteps; k++) PyList_SET_ITEM(by, k, PyLong_FromUnsignedLongLong(J->failed_by_step[k]));
        PyObject *d = by && w && hc && hu
                          ? Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:N,s:N,s:N,s:N}", "started",
                                          (unsigned long long)m->started, "completed", (unsigned long long)m->completed,
                                          "passed", (unsigned long long)m->passed, "failed",
                                          (unsigned long long)m->failed, "failed_setup",
                                          (unsigned long long)m->failed_setup, "failed_by_step", by, "hcorr", hc,
                                          "hunc", hu, "warmup", w)
                          : NULL;
        if (!d) {
            if (!(by && w && hc && hu)) {
                Py_XDECREF(by);
                Py_XDECREF(w);
                Py_XDECREF(hc);
                Py_XDECREF(hu);
            }
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, d);
    }
    return list;
}

/* The kept cut streams: [(error kind, status, events, bytes, after_us, quiet_us, at_us, tail)] */
static PyObject *cuts_list(const stream_t *st) {
    PyObject *list = PyList_New(st->ncuts);
    for (int i = 0; list && i < st->ncuts; i++) {
        const scut_t *k = &st->cuts[i];
        PyObject *t = Py_BuildValue("(siKKLLLy#)", ERROR_KINDS[k->kind], k->status, (unsigned long long)k->events,
                                    (unsigned long long)k->bytes, (long long)k->after_us, (long long)k->quiet_us,
                                    (long long)k->at_us, k->tail, (Py_ssize_t)k->tail_len);
        if (!t) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, t);
    }
    return list;
}

/* A streaming endpoint's figures (see stream_t): counts, the kept cut streams, and its
 * histograms as (first index, counts bytes) pairs. */
static PyObject *stream_dict(const stream_t *st) {
    PyObject *cuts = cuts_list(st);
    PyObject *d = cuts ? Py_BuildValue("{s:K,s:K,s:K,s:K,s:N}", "streams", (unsigned long long)st->streams, "cut",
                                       (unsigned long long)st->cut, "events", (unsigned long long)st->events,
                                       "bytes", (unsigned long long)st->bytes, "cuts", cuts)
                       : NULL;
    for (int i = 0; d && i < STREAM_HISTS; i++) {
        PyObject *h = hist_export(st->h[i], L_MAIN.counts_len);
        if (!h || PyDict_SetItemString(d, STREAM_HIST_NAMES[i], h) < 0) Py_CLEAR(d);
        Py_XDECREF(h);
    }
    return d;
}

static PyObject *Engine_results(Engine *E, PyObject *Py_UNUSED(ignored)) {
    if (!E->ran || E->running) {
        PyErr_SetString(PyExc_RuntimeError, "results are available once run() has returned");
        return NULL;
    }
    PyObject *eps = PyList_New(E->nep);
    if (!eps) return NULL;
    for (uint32_t i = 0; i < E->nep; i++) {
        endpoint *e = &E->eps[i];
        PyObject *m = counters_dict(&e->c[PH_MEASURED]), *w = counters_dict(&e->c[PH_WARMUP]);
        PyObject *sm = status_dict(e->status[PH_MEASURED]), *sw = status_dict(e->status[PH_WARMUP]);
        PyObject *hc = hist_export(e->hcorr, L_MAIN.counts_len), *hu = hist_export(e->hunc, L_MAIN.counts_len);
        if (!m || !w || !sm || !sw || !hc || !hu) {
            Py_XDECREF(m);
            Py_XDECREF(w);
            Py_XDECREF(sm);
            Py_XDECREF(sw);
            Py_XDECREF(hc);
            Py_XDECREF(hu);
            Py_DECREF(eps);
            return NULL;
        }
        PyDict_SetItemString(m, "status", sm);
        PyDict_SetItemString(w, "status", sw);
        Py_DECREF(sm);
        Py_DECREF(sw);
        PyObject *fl = failures_list(e->x);
        PyObject *d = fl ? Py_BuildValue("{s:N,s:N,s:N,s:N,s:N}", "measured", m, "warmup", w, "corrected", hc,
                                         "uncorrected", hu, "failures", fl)
                         : NULL;
        if (d && e->st) {
            PyObject *sd = stream_dict(e->st);
            if (!sd || PyDict_SetItemString(d, "stream", sd) < 0) Py_CLEAR(d);
            Py_XDECREF(sd);
        }
        if (!d) {
            Py_DECREF(eps);
            return NULL;
        }
        PyList_SET_ITEM(eps, i, d);
    }
    PyObject *series = PyList_New((Py_ssize_t)E->S.n);
    if (!series) {
        Py_DECREF(eps);
        return NULL;
    }
    for (size_t i = 0; i < E->S.n; i++) {
        PyObject *d = record_dict(E, &E->S.recs[i]);
        if (!d) {
            Py_DECREF(eps);
            Py_DECREF(series);
            return NULL;
        }
        PyList_SET_ITEM(series, (Py_ssize_t)i, d);
    }
    PyObject *res = Py_BuildValue("{s:N,s:N,s:L,s:L,s:L,s:d,s:d,s:d,s:L,s:K,s:K,s:s}", "endpoints", eps, "series", series,
                         "start_ns", (long long)E->start_ns, "measure_start_ns", (long long)E->measure_ns, "end_ns",
                         (long long)E->finish_ns, "wall_s", (double)(E->finish_ns - E->start_ns) / 1e9, "cpu_user_s",
                         E->cpu_user, "cpu_sys_s", E->cpu_sys, "max_lag_us", (long long)(E->max_lag_ns / 1000),
                         "connections_opened", (unsigned long long)E->conns_opened, "retries",
                         (unsigned long long)E->retries, "stopped", E->stopped);
    if (res) {
        PyObject *er = endpoint_records(E, 0);
        if (!er || PyDict_SetItemString(res, "endpoint_series", er) < 0) Py_CLEAR(res);
        Py_XDECREF(er);
    }
    if (res && E->prog) {
        PyObject *js = journeys_list(E->prog);
        if (!js || PyDict_SetItemString(res, "journeys", js) < 0) Py_CLEAR(res);
        Py_XDECREF(js);
        /* the end of the drain, before the teardowns; 0: not reached (stopped) */
        PyObject *dn = res ? PyLong_FromLongLong((long long)E->drained_ns) : NULL;
        if (res && (!dn || PyDict_SetItemString(res, "drained_ns", dn) < 0)) Py_CLEAR(res);
        Py_XDECREF(dn);
        /* closed model with a setup: when the last user's setup ended (0: not reached), and
         * how many users gave theirs up */
        PyObject *se = res ? Py_BuildValue("(LK)", (long long)E->setups_ended_ns,
                                           (unsigned long long)E->setups_given_up)
                           : NULL;
        if (res && (!se || PyDict_SetItemString(res, "setups", se) < 0)) Py_CLEAR(res);
        Py_XDECREF(se);
    }
    return res;
}

/* ------------------------------------------------------------------------- */
/* Construction                                                               */
/* ------------------------------------------------------------------------- */

static int parse_loopback(Engine *E, const char *host, int port) {
    memset(&E->addr, 0, sizeof(E->addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&E->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&E->addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) goto refuse;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        E->family = AF_INET;
        E->addrlen = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) goto refuse;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        E->family = AF_INET6;
        E->addrlen = sizeof(*a6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "host '%s' is not an IPv4 or IPv6 address literal", host);
    return -1;
refuse:
    PyErr_Format(PyExc_ValueError,
                 "refusing to send load to %s: only loopback addresses (127.0.0.0/8, ::1) are allowed", host);
    return -1;
}

static int Engine_init(Engine *E, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"host",          "port",           "requests",       "weights",     "closed",
                             "stages",        "poisson",        "seed",           "users",       "think_time",
                             "duration",      "max_requests",   "warmup",         "max_connections",
                             "max_queue",     "timeout",        "late_threshold", "sequence_offset",
                             "arrival_offset", "expects", "program", "streams", NULL};
    const char *host;
    int port, closed = 0, poisson = 0, users = 1, max_conn = 64;
    PyObject *requests, *weights, *stages = NULL, *expects = Py_None, *program = Py_None, *streams = Py_None;
    unsigned long long seed = 0, max_requests = 0, seq_offset = 0;
    double think = 0, duration = 0, warmup = 0, timeout = 10.0, late = 0.01, arrival_offset = 0;
    Py_ssize_t max_queue = 1000000;
    if (E->ran || E->eps) {
        PyErr_SetString(PyExc_RuntimeError, "an Engine is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "siOO|$pOpKiddKdinddKdOOO:Engine", kwlist, &host, &port, &requests,
                                     &weights, &closed, &stages, &poisson, &seed, &users, &think, &duration,
                                     &max_requests, &warmup, &max_conn, &max_queue, &timeout, &late, &seq_offset,
                                     &arrival_offset, &expects, &program, &streams))
        return -1;
    if (port < 1 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d out of range", port);
        return -1;
    }
    if (parse_loopback(E, host, port) < 0) return -1;
    PyObject *rq = PySequence_Fast(requests, "requests must be a sequence of bytes");
    if (!rq) return -1;
    PyObject *wq = PySequence_Fast(weights, "weights must be a sequence of int");
    if (!wq) {
        Py_DECREF(rq);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(rq);
    int rc = -1;
    int64_t *w = NULL;
    PyObject *xq = NULL, *sq = NULL;
    if (program != Py_None) { /* journeys: requests and weights are ignored */
        if (program_parse(E, program, expects, seq_offset) < 0) goto out;
        goto configure;
    }
    if (expects != Py_None) {
        xq = PySequence_Fast(expects, "expects must be a sequence (None or an expectation per request)");
        if (!xq) goto out;
        if (PySequence_Fast_GET_SIZE(xq) != n) {
            PyErr_SetString(PyExc_ValueError, "expects: one item (None or an expectation) per request");
            goto out;
        }
    }
    if (streams != Py_None) {
        sq = PySequence_Fast(streams, "streams must be a sequence (None, 'sse', 'chunks' or 'lines' per request)");
        if (!sq) goto out;
        if (PySequence_Fast_GET_SIZE(sq) != n) {
            PyErr_SetString(PyExc_ValueError, "streams: one item (None, 'sse', 'chunks' or 'lines') per request");
            goto out;
        }
    }
    if (n < 1 || n > MAX_ENDPOINTS || PySequence_Fast_GET_SIZE(wq) != n) {
        PyErr_Format(PyExc_ValueError, "need 1 to %d requests, with one weight each", MAX_ENDPOINTS);
        goto out;
    }
    E->nep = (uint32_t)n;
    E->eps = xcalloc((size_t)n, sizeof(endpoint));
    w = xcalloc((size_t)n, sizeof(int64_t));
    if (!E->eps || !w) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PySequence_Fast_GET_ITEM(rq, i);
        char *data;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(b, &data, &len) < 0) goto out;
        if (len < 16) {
            PyErr_SetString(PyExc_ValueError, "a request must be a serialized HTTP/1.1 request");
            goto out;
        }
        endpoint *e = &E->eps[i];
        e->req = malloc((size_t)len);
        e->status[0] = xcalloc(NSTATUS, sizeof(uint64_t));
        e->status[1] = xcalloc(NSTATUS, sizeof(uint64_t));
        e->hcorr = xcalloc((size_t)L_MAIN.counts_len, sizeof(uint64_t));
        e->hunc = xcalloc((size_t)L_MAIN.counts_len, sizeof(uint64_t));
        if (!e->req || !e->status[0] || !e->status[1] || !e->hcorr || !e->hunc) {
            PyErr_NoMemory();
            goto out;
        }
        memcpy(e->req, data, (size_t)len);
        e->len = (size_t)len;
        e->head = memcmp(data, "HEAD ", 5) == 0;
        if (xq && PySequence_Fast_GET_ITEM(xq, i) != Py_None &&
            expect_parse(PySequence_Fast_GET_ITEM(xq, i), e->head, &e->x) < 0)
            goto out;
        if (sq && PySequence_Fast_GET_ITEM(sq, i) != Py_None) {
            const char *mode = PyUnicode_Check(PySequence_Fast_GET_ITEM(sq, i))
                                   ? PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(sq, i))
                                   : NULL;
            e->stream = !mode                        ? S_NONE
                        : strcmp(mode, "sse") == 0    ? S_SSE
                        : strcmp(mode, "chunks") == 0 ? S_CHUNKS
                        : strcmp(mode, "lines") == 0  ? S_LINES
                                                      : S_NONE;
            if (e->stream == S_NONE) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "streams: an item is None, 'sse', 'chunks' or 'lines'");
                goto out;
            }
            if (e->head) {
                PyErr_SetString(PyExc_ValueError, "streams: a HEAD request gets no body to stream");
                goto out;
            }
            e->st = stream_new();
            if (!e->st) {
                PyErr_NoMemory();
                goto out;
            }
        }
        long long wi = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(wq, i));
        if (wi == -1 && PyErr_Occurred()) goto out;
        if (wi < 1 || wi > (1LL << 40)) {
            PyErr_SetString(PyExc_ValueError, "weights must be positive integers");
            goto out;
        }
        w[i] = wi;
    }
    if (wrr_build(&E->mix, w, E->nep, seq_offset) < 0) goto out;

configure:;
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++) E->rng[i] = splitmix64(&sm);
    E->closed = closed;
    E->poisson = poisson;
    E->users = users;
    E->think_ns = (int64_t)(think * 1e9);
    E->duration_s = duration;
    E->max_requests = max_requests;
    E->warmup_ns = (int64_t)(warmup * 1e9);
    E->timeout_ns = (int64_t)(timeout * 1e9);
    E->late_ns = (int64_t)(late * 1e9);
    E->max_conn = max_conn;
    E->max_queue = (size_t)max_queue;
    E->arrival_offset = arrival_offset;
    if (timeout <= 0 || late < 0 || think < 0 || duration < 0 || warmup < 0 || max_queue < 0 ||
        !(arrival_offset >= 0 && arrival_offset < 1)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be > 0; think_time, duration, warmup, late_threshold, "
                                          "max_queue >= 0; arrival_offset in [0, 1)");
        goto out;
    }
    if (closed) {
        if (users < 1 || users > 1000000) {
            PyErr_SetString(PyExc_ValueError, "closed model: users must be between 1 and 1000000");
            goto out;
        }
        if (duration <= 0 && max_requests == 0) {
            PyErr_SetString(PyExc_ValueError, "closed model: a duration or max_requests bound is required");
            goto out;
        }
    } else {
        if (max_conn < 1 || max_conn > 1000000) {
            PyErr_SetString(PyExc_ValueError, "open model: max_connections must be between 1 and 1000000");
            goto out;
        }
        PyObject *sq = stages ? PySequence_Fast(stages, "stages must be a sequence of (duration, r0, r1)") : NULL;
        if (!sq) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "open model: stages are required");
            goto out;
        }
        Py_ssize_t ns = PySequence_Fast_GET_SIZE(sq);
        E->stages = xcalloc((size_t)ns, sizeof(stage_t));
        E->nstages = (int)ns;
        double cum = 0, t0 = 0;
        for (Py_ssize_t i = 0; i < ns; i++) {
            stage_t *s = &E->stages[i];
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(sq, i), "ddd;a stage is (duration, r0, r1)", &s->dur,
                                  &s->r0, &s->r1)) {
                Py_DECREF(sq);
                goto out;
            }
            int bad = !(s->dur > 0) || !(s->r0 >= 0) || !(s->r1 >= 0) || isinf(s->r0) || isinf(s->r1) ||
                      (isinf(s->dur) && (s->r0 != s->r1 || s->r0 <= 0 || i != ns - 1));
            if (bad) {
                Py_DECREF(sq);
                PyErr_SetString(PyExc_ValueError, "stage durations must be > 0 and rates >= 0 (an unbounded "
                                                  "stage must be the last, at a constant positive rate)");
                goto out;
            }
            s->cum0 = cum;
            s->t0 = t0;
            cum += stage_count(s);
            t0 += s->dur;
        }
        Py_DECREF(sq);
        if (isinf(t0) && max_requests == 0) {
            PyErr_SetString(PyExc_ValueError, "open model: an unbounded schedule needs max_requests");
            goto out;
        }
    }
    rc = 0;
out:
    free(w);
    Py_XDECREF(xq);
    Py_XDECREF(sq);
    Py_DECREF(rq);
    Py_DECREF(wq);
    return rc;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Engine *E = (Engine *)type->tp_alloc(type, 0);
    if (E) E->epfd = -1;
    return (PyObject *)E;
}

static void Engine_dealloc(Engine *E) {
    if (E->eps)
        for (uint32_t i = 0; i < E->nep; i++) {
            free(E->eps[i].req);
            free(E->eps[i].status[0]);
            free(E->eps[i].status[1]);
            free(E->eps[i].hcorr);
            free(E->eps[i].hunc);
            expect_free(E->eps[i].x);
            stream_free(E->eps[i].st);
        }
    free(E->eps);
    users_free(E);
    program_free(E->prog);
    free(E->heap);
    wrr_free(&E->mix);
    free(E->stages);
    free(E->conns);
    free(E->free_slots);
    free(E->q);
    free(E->tq);
    free(E->buf);
    free(E->xs);
    free(E->ss);
    series_free(&E->S);
    if (E->SE)
        for (uint32_t i = 0; i < E->nep; i++)
            if (E->SE[i]) {
                series_free(E->SE[i]);
                free(E->SE[i]);
            }
    free(E->SE);
    Py_XDECREF(E->exc_type);
    Py_XDECREF(E->exc_value);
    Py_XDECREF(E->exc_tb);
    Py_TYPE(E)->tp_free((PyObject *)E);
}

static PyMethodDef Engine_methods[] = {
    {"run", (PyCFunction)(void (*)(void))Engine_run, METH_VARARGS | METH_KEYWORDS,
     "run(progress=None, should_stop=None, start_ns=0) -> None\n\nRun the load on this thread, GIL released, "
     "starting at CLOCK_MONOTONIC time start_ns (now if earlier). "
     "Raises what a signal handler, progress or should_stop raised, after closing every socket."},
    {"stop", (PyCFunction)Engine_stop, METH_NOARGS, "Ask a running engine to stop (any thread); effective within 50 ms."},
    {"results", (PyCFunction)Engine_results, METH_NOARGS, "The recorded data, once run() has returned or raised."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gonogo.loadgen._engine.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One worker's load run. See gonogo.loadgen.engine for the Python API.",
    .tp_new = Engine_new,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

/* ------------------------------------------------------------------------- */
/* Module functions                                                           */
/* ------------------------------------------------------------------------- */

/* Test hook: record values (us) with the engine's own indexing; returns
 * (first index, counts bytes) like results() does for the latency histograms. */
static PyObject *mod_record_values(PyObject *self, PyObject *args) {
    PyObject *values;
    int sigfigs = MAIN_SIGFIGS;
    if (!PyArg_ParseTuple(args, "O|i:record_values", &values, &sigfigs)) return NULL;
    if (sigfigs != MAIN_SIGFIGS && sigfigs != SERIES_SIGFIGS) {
        PyErr_SetString(PyExc_ValueError, "significant figures must be 2 or 3");
        return NULL;
    }
    const hlayout *l = sigfigs == MAIN_SIGFIGS ? &L_MAIN : &L_SERIES;
    PyObject *seq = PySequence_Fast(values, "values must be a sequence of int");
    if (!seq) return NULL;
    uint64_t *h = xcalloc((size_t)l->counts_len, sizeof(uint64_t));
    if (!h) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            free(h);
            Py_DECREF(seq);
            return NULL;
        }
        h[hindex(l, v)]++;
    }
    Py_DECREF(seq);
    PyObject *r = hist_export(h, l->counts_len);
    free(h);
    return r;
}

static PyObject *mod_counts_len(PyObject *self, PyObject *arg) {
    long s = PyLong_AsLong(arg);
    if (s == -1 && PyErr_Occurred()) return NULL;
    if (s != MAIN_SIGFIGS && s != SERIES_SIGFIGS) {
        PyErr_SetString(PyExc_ValueError, "significant figures must be 2 or 3");
        return NULL;
    }
    return PyLong_FromLong(s == MAIN_SIGFIGS ? L_MAIN.counts_len : L_SERIES.counts_len);
}

/* A worker process must not outlive the process that started it. */
static PyObject *mod_set_parent_death_signal(PyObject *self, PyObject *arg) {
    long sig = PyLong_AsLong(arg);
    if (sig == -1 && PyErr_Occurred()) return NULL;
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"record_values", mod_record_values, METH_VARARGS,
     "record_values(values, significant_figures=3) -> (first_index, counts_bytes)"},
    {"counts_len", mod_counts_len, METH_O, "counts_len(significant_figures) -> int"},
    {"set_parent_death_signal", mod_set_parent_death_signal, METH_O,
     "set_parent_death_signal(signum): prctl(PR_SET_PDEATHSIG)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "gonogo.loadgen._engine",
                                       "The C hot loop of gonogo's load engine.", -1, module_methods};

PyMODINIT_FUNC PyInit__engine(void) {
    hlayout_init(&L_MAIN, MAIN_SIGFIGS);
    hlayout_init(&L_SERIES, SERIES_SIGFIGS);
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *kinds = PyTuple_New(NERR);
    if (!kinds) return NULL;
    for (int i = 0; i < NERR; i++) PyTuple_SET_ITEM(kinds, i, PyUnicode_FromString(ERROR_KINDS[i]));
    PyModule_AddObject(m, "ERROR_KINDS", kinds);
    PyModule_AddIntConstant(m, "HIGHEST_TRACKABLE", (long)HIGHEST_TRACKABLE);
    PyModule_AddIntConstant(m, "SIGNIFICANT_FIGURES", MAIN_SIGFIGS);
    PyModule_AddIntConstant(m, "SERIES_SIGNIFICANT_FIGURES", SERIES_SIGFIGS);
    return m;
}
