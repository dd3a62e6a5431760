/*
 * gonogo.faults._relay: the fault proxy's fast path. Proxied connections of a proxy without any
 * toxic are relayed here, by one thread on epoll with plain read/send, no Python per chunk.
 *
 * Python (gonogo/faults/proxy.py) accepts and connects, then hands both sockets over with add();
 * the relay owns them until the connection ends by itself (reported through reap(), woken by
 * notify_fd), until Python closes it (close()) or takes the sockets back (take(), when a toxic
 * is added: toxics apply to existing connections, and the asyncio path applies them).
 *
 * Per direction one buffer of BUF_SIZE: a direction reads only when its buffer is empty, so a slow
 * reader holds the writer back through TCP (backpressure, nothing buffered without bound). A FIN is
 * forwarded as shutdown(SHUT_WR) once the buffer is flushed (half-close); a reset or write error
 * closes both sockets, resetting the other peer (SO_LINGER 0) so it sees the reset too.
 *
 * Locking: one mutex guards the link table. The relay thread holds it while it handles a batch of
 * events (never while it waits in epoll_wait); the Python-facing calls take it too. The relay
 * thread never touches Python objects, so it never needs the GIL.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 256
#define STOP_TAG UINT64_MAX
#define SIDE_BIT (UINT64_C(1) << 31)
#define SLOT_MASK (SIDE_BIT - 1)

typedef struct {
    char *buf;
    size_t start, end; /* pending bytes: buf[start:end] */
    int eof;           /* the source sent its FIN */
    int shut;          /* ... and it was forwarded: shutdown(destination, SHUT_WR) */
    uint64_t bytes;    /* written to the destination */
} Direction;

/* fd[0] is the client, fd[1] the upstream; dir[i] reads fd[i] and writes fd[1 - i], so dir[0] is
 * "upstream" (client to server) and dir[1] "downstream" (server to client). */
typedef struct {
    uint32_t generation; /* bumped when the slot is freed: stale ids and events no longer match */
    int in_use;
    int fd[2];
    uint32_t interest[2]; /* events registered for fd[i]; 0 = not in the epoll set */
    Direction dir[2];
} Link;

typedef struct {
    uint64_t id;
    uint64_t bytes[2];
} Finished;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_t thread;
    int running;   /* the relay thread was started and not joined yet */
    int stopping;  /* under lock: the relay thread must exit */
    int epfd;
    int notify_fd; /* eventfd: relay thread -> Python, "links finished, reap them" */
    int stop_fd;   /* eventfd in the epoll set: Python -> relay thread, "stop" */
    Link *links;
    uint32_t capacity;
    uint32_t *free_slots;
    uint32_t free_count;
    uint32_t live;
    Finished *finished;
    size_t finished_count, finished_capacity;
} Relay;

static uint64_t link_id(Relay *r, Link *link) {
    return ((uint64_t)link->generation << 32) | (uint64_t)(link - r->links);
}

/* The live link of an id (or of an epoll tag, whose side bit is ignored), NULL if it is gone. */
static Link *find_link(Relay *r, uint64_t id) {
    uint64_t slot = id & SLOT_MASK;
    if (slot >= r->capacity) return NULL;
    Link *link = &r->links[slot];
    if (!link->in_use || link->generation != (uint32_t)(id >> 32)) return NULL;
    return link;
}

static void set_interest(Relay *r, Link *link, int i, uint32_t want) {
    if (want == link->interest[i]) return;
    struct epoll_event ev = {.events = want, .data.u64 = link_id(r, link) | (i ? SIDE_BIT : 0)};
    int op = link->interest[i] == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(r->epfd, op, link->fd[i], &ev) == 0) link->interest[i] = want;
}

static void update_interest(Relay *r, Link *link) {
    for (int i = 0; i < 2; i++) {
        uint32_t want = 0;
        Direction *from = &link->dir[i], *to = &link->dir[1 - i];
        if (!from->eof && from->start == from->end) want |= EPOLLIN;
        if (to->start < to->end) want |= EPOLLOUT;
        set_interest(r, link, i, want);
    }
}

/* Removes the link from the epoll set and frees its slot; its fds are left to the caller. */
static void release_link(Relay *r, Link *link) {
    for (int i = 0; i < 2; i++) {
        if (link->interest[i]) epoll_ctl(r->epfd, EPOLL_CTL_DEL, link->fd[i], NULL);
        link->interest[i] = 0;
    }
    free(link->dir[0].buf); /* one allocation holds both buffers */
    memset(link->dir, 0, sizeof link->dir);
    link->in_use = 0;
    link->generation++;
    r->free_slots[r->free_count++] = (uint32_t)(link - r->links);
    r->live--;
}

static void reset_on_close(int fd) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

static void close_link(Relay *r, Link *link, int reset0, int reset1) {
    int fds[2] = {link->fd[0], link->fd[1]};
    release_link(r, link);
    if (reset0) reset_on_close(fds[0]);
    if (reset1) reset_on_close(fds[1]);
    close(fds[0]);
    close(fds[1]);
}

/* The link ended in the relay thread: record its counters for reap() and wake Python. */
static void finish_link(Relay *r, Link *link, int reset0, int reset1) {
    if (r->finished_count == r->finished_capacity) {
        size_t capacity = r->finished_capacity ? r->finished_capacity * 2 : 64;
        Finished *grown = realloc(r->finished, capacity * sizeof *grown);
        if (grown != NULL) {
            r->finished = grown;
            r->finished_capacity = capacity;
        }
    }
    if (r->finished_count < r->finished_capacity) {
        Finished *f = &r->finished[r->finished_count++];
        f->id = link_id(r, link);
        f->bytes[0] = link->dir[0].bytes;
        f->bytes[1] = link->dir[1].bytes;
    }
    close_link(r, link, reset0, reset1);
}

/* Sends what dir d holds; forwards its FIN once it is empty. Returns 0, or -1 if the link is gone. */
static int flush(Relay *r, Link *link, int d) {
    Direction *dir = &link->dir[d];
    int dst = link->fd[1 - d];
    while (dir->start < dir->end) {
        ssize_t sent = send(dst, dir->buf + dir->start, dir->end - dir->start, MSG_NOSIGNAL);
        if (sent > 0) {
            dir->start += (size_t)sent;
            dir->bytes += (uint64_t)sent;
        } else if (sent < 0 && errno == EINTR) {
            continue;
        } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            int err = errno;
            /* the destination is gone: reset the source so it stops sending into the void */
            int reset_src = err == ECONNRESET || err == EPIPE;
            finish_link(r, link, d == 0 ? reset_src : 0, d == 1 ? reset_src : 0);
            return -1;
        }
    }
    dir->start = dir->end = 0;
    if (dir->eof && !dir->shut) {
        dir->shut = 1;
        if (shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) {
            finish_link(r, link, 0, 0);
            return -1;
        }
        if (link->dir[1 - d].shut) { /* both FINs forwarded: the connection is over */
            finish_link(r, link, 0, 0);
            return -1;
        }
    }
    return 0;
}

static int pump(Relay *r, Link *link, int d) {
    Direction *dir = &link->dir[d];
    ssize_t got;
    do {
        got = read(link->fd[d], dir->buf, BUF_SIZE);
    } while (got < 0 && errno == EINTR);
    if (got > 0) {
        dir->start = 0;
        dir->end = (size_t)got;
    } else if (got == 0) {
        dir->eof = 1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
    } else {
        int err = errno;
        /* the source reset (or failed): the other peer gets a reset too */
        int reset_other = err == ECONNRESET;
        finish_link(r, link, d == 1 ? reset_other : 0, d == 0 ? reset_other : 0);
        return -1;
    }
    return flush(r, link, d);
}

static void handle(Relay *r, Link *link, int side, uint32_t events) {
    uint32_t interest = link->interest[side];
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (interest & EPOLLIN)) {
        if (pump(r, link, side) < 0) return;
    }
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && (interest & EPOLLOUT)) {
        if (flush(r, link, 1 - side) < 0) return;
    }
    update_interest(r, link);
}

static void *relay_main(void *arg) {
    Relay *r = arg;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(r->epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        pthread_mutex_lock(&r->lock);
        if (r->stopping) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        size_t finished_before = r->finished_count;
        for (int k = 0; k < n; k++) {
            uint64_t tag = events[k].data.u64;
            if (tag == STOP_TAG) continue;
            Link *link = find_link(r, tag);
            if (link != NULL) handle(r, link, (tag & SIDE_BIT) ? 1 : 0, events[k].events);
        }
        if (r->finished_count > finished_before) {
            uint64_t one = 1;
            ssize_t ignored = write(r->notify_fd, &one, sizeof one);
            (void)ignored;
        }
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

/* -- Python type ------------------------------------------------------------------------------ */

static void lock_released_gil(Relay *r) {
    if (pthread_mutex_trylock(&r->lock) == 0) return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&r->lock);
    Py_END_ALLOW_THREADS
}

static int check_open(Relay *r) {
    if (r->epfd < 0) {
        PyErr_SetString(PyExc_RuntimeError, "the relay is stopped");
        return -1;
    }
    return 0;
}

static PyObject *Relay_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Relay", kwlist)) return NULL;
    Relay *r = (Relay *)type->tp_alloc(type, 0);
    if (r == NULL) return NULL;
    r->epfd = r->notify_fd = r->stop_fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->epfd < 0 || r->notify_fd < 0 || r->stop_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(r);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = STOP_TAG};
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->stop_fd, &ev) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(r);
        return NULL;
    }
    int err = pthread_create(&r->thread, NULL, relay_main, r);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(r);
        return NULL;
    }
    r->running = 1;
    return (PyObject *)r;
}

/* Stops the thread, closes every link still relayed (their counters are lost: Python closes its
 * links first) and the relay's own fds. Idempotent. */
static void relay_stop(Relay *r) {
    if (r->running) {
        pthread_mutex_lock(&r->lock);
        r->stopping = 1;
        pthread_mutex_unlock(&r->lock);
        uint64_t one = 1;
        ssize_t ignored = write(r->stop_fd, &one, sizeof one);
        (void)ignored;
        Py_BEGIN_ALLOW_THREADS
        pthread_join(r->thread, NULL);
        Py_END_ALLOW_THREADS
        r->running = 0;
    }
    for (uint32_t slot = 0; slot < r->capacity; slot++) {
        if (r->links[slot].in_use) close_link(r, &r->links[slot], 0, 0);
    }
    if (r->epfd >= 0) close(r->epfd);
    if (r->notify_fd >= 0) close(r->notify_fd);
    if (r->stop_fd >= 0) close(r->stop_fd);
    r->epfd = r->notify_fd = r->stop_fd = -1;
}

static void Relay_dealloc(Relay *r) {
    relay_stop(r);
    free(r->links);
    free(r->free_slots);
    free(r->finished);
    pthread_mutex_destroy(&r->lock);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static int grow(Relay *r) {
    uint32_t capacity = r->capacity ? r->capacity * 2 : 64;
    if (capacity > SLOT_MASK) return -1;
    Link *links = realloc(r->links, capacity * sizeof *links);
    if (links == NULL) return -1;
    r->links = links;
    uint32_t *free_slots = realloc(r->free_slots, capacity * sizeof *free_slots);
    if (free_slots == NULL) return -1;
    r->free_slots = free_slots;
    memset(&r->links[r->capacity], 0, (capacity - r->capacity) * sizeof *links);
    for (uint32_t slot = capacity; slot > r->capacity; slot--) {
        r->links[slot - 1].generation = 1;
        r->free_slots[r->free_count++] = slot - 1;
    }
    r->capacity = capacity;
    return 0;
}

static PyObject *Relay_add(Relay *r, PyObject *args) {
    int client_fd, upstream_fd;
    if (!PyArg_ParseTuple(args, "ii:add", &client_fd, &upstream_fd)) return NULL;
    if (check_open(r) < 0) return NULL;
    int fds[2] = {client_fd, upstream_fd};
    for (int i = 0; i < 2; i++) {
        int flags = fcntl(fds[i], F_GETFL);
        if (flags < 0 || fcntl(fds[i], F_SETFL, flags | O_NONBLOCK) < 0) return PyErr_SetFromErrno(PyExc_OSError);
        int one = 1; /* forward each chunk at once: the proxy must not add Nagle delays */
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char *buffers = malloc(2 * BUF_SIZE);
    if (buffers == NULL) return PyErr_NoMemory();
    lock_released_gil(r);
    if (r->free_count == 0 && grow(r) < 0) {
        pthread_mutex_unlock(&r->lock);
        free(buffers);
        return PyErr_NoMemory();
    }
    Link *link = &r->links[r->free_slots[--r->free_count]];
    link->in_use = 1;
    link->fd[0] = client_fd;
    link->fd[1] = upstream_fd;
    link->interest[0] = link->interest[1] = 0;
    memset(link->dir, 0, sizeof link->dir);
    link->dir[0].buf = buffers;
    link->dir[1].buf = buffers + BUF_SIZE;
    r->live++;
    uint64_t id = link_id(r, link);
    update_interest(r, link);
    if (link->interest[0] != EPOLLIN || link->interest[1] != EPOLLIN) {
        int err = errno;
        release_link(r, link); /* the fds stay the caller's */
        pthread_mutex_unlock(&r->lock);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_mutex_unlock(&r->lock);
    return PyLong_FromUnsignedLongLong(id);
}

static int parse_id(PyObject *arg, uint64_t *id) {
    *id = PyLong_AsUnsignedLongLong(arg);
    return (*id == (uint64_t)-1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *Relay_take(Relay *r, PyObject *arg) {
    uint64_t id;
    if (parse_id(arg, &id) < 0 || check_open(r) < 0) return NULL;
    lock_released_gil(r);
    Link *link = find_link(r, id);
    if (link == NULL) {
        pthread_mutex_unlock(&r->lock);
        Py_RETURN_NONE;
    }
    int fds[2] = {link->fd[0], link->fd[1]};
    uint64_t bytes[2] = {link->dir[0].bytes, link->dir[1].bytes};
    PyObject *pending[2] = {NULL, NULL};
    for (int d = 0; d < 2; d++) {
        Direction *dir = &link->dir[d];
        pending[d] = PyBytes_FromStringAndSize(dir->buf + dir->start, (Py_ssize_t)(dir->end - dir->start));
    }
    release_link(r, link);
    pthread_mutex_unlock(&r->lock);
    if (pending[0] == NULL || pending[1] == NULL) { /* out of memory: the link is lost, close it */
        Py_XDECREF(pending[0]);
        Py_XDECREF(pending[1]);
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    return Py_BuildValue("(iiNNKK)", fds[0], fds[1], pending[0], pending[1], (unsigned long long)bytes[0],
                         (unsigned long long)bytes[1]);
}

static PyObject *Relay_close(Relay *r, PyObject *args) {
    PyObject *id_obj;
    int reset = 0;
    if (!PyArg_ParseTuple(args, "O|p:close", &id_obj, &reset)) return NULL;
    uint64_t id;
    if (parse_id(id_obj, &id) < 0 || check_open(r) < 0) return NULL;
    lock_released_gil(r);
    Link *link = find_link(r, id);
    if (link == NULL) {
        pthread_mutex_unlock(&r->lock);
        Py_RETURN_NONE;
    }
    uint64_t bytes[2] = {link->dir[0].bytes, link->dir[1].bytes};
    close_link(r, link, reset, reset);
    pthread_mutex_unlock(&r->lock);
    return Py_BuildValue("(KK)", (unsigned long long)bytes[0], (unsigned long long)bytes[1]);
}

static PyObject *Relay_counters(Relay *r, PyObject *arg) {
    uint64_t id;
    if (parse_id(arg, &id) < 0 || check_open(r) < 0) return NULL;
    lock_released_gil(r);
    Link *link = find_link(r, id);
    uint64_t bytes[2] = {0, 0};
    if (link != NULL) {
        bytes[0] = link->dir[0].bytes;
        bytes[1] = link->dir[1].bytes;
    }
    pthread_mutex_unlock(&r->lock);
    if (link == NULL) Py_RETURN_NONE;
    return Py_BuildValue("(KK)", (unsigned long long)bytes[0], (unsigned long long)bytes[1]);
}

static PyObject *Relay_reap(Relay *r, PyObject *Py_UNUSED(ignored)) {
    if (check_open(r) < 0) return NULL;
    uint64_t count;
    ssize_t ignored = read(r->notify_fd, &count, sizeof count);
    (void)ignored;
    lock_released_gil(r);
    size_t n = r->finished_count;
    Finished *items = NULL;
    if (n) {
        items = malloc(n * sizeof *items);
        if (items != NULL) {
            memcpy(items, r->finished, n * sizeof *items);
            r->finished_count = 0;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (n && items == NULL) return PyErr_NoMemory();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t k = 0; list != NULL && k < n; k++) {
        PyObject *item = Py_BuildValue("(KKK)", (unsigned long long)items[k].id,
                                       (unsigned long long)items[k].bytes[0], (unsigned long long)items[k].bytes[1]);
        if (item == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)k, item);
    }
    free(items);
    return list;
}

static PyObject *Relay_stop(Relay *r, PyObject *Py_UNUSED(ignored)) {
    relay_stop(r);
    Py_RETURN_NONE;
}

static PyObject *Relay_get_notify_fd(Relay *r, void *Py_UNUSED(closure)) { return PyLong_FromLong(r->notify_fd); }

static PyObject *Relay_get_links(Relay *r, void *Py_UNUSED(closure)) {
    lock_released_gil(r);
    uint32_t live = r->live;
    pthread_mutex_unlock(&r->lock);
    return PyLong_FromUnsignedLong(live);
}

static PyMethodDef Relay_methods[] = {
    {"add", (PyCFunction)Relay_add, METH_VARARGS,
     "add(client_fd, upstream_fd) -> id: relay these two connected sockets; the relay owns them from now on"},
    {"take", (PyCFunction)Relay_take, METH_O,
     "take(id) -> (client_fd, upstream_fd, pending_upstream, pending_downstream, bytes_upstream, "
     "bytes_downstream), or None if the link already ended: stop relaying and hand the sockets back"},
    {"close", (PyCFunction)Relay_close, METH_VARARGS,
     "close(id, reset=False) -> (bytes_upstream, bytes_downstream), or None if the link already ended"},
    {"counters", (PyCFunction)Relay_counters, METH_O,
     "counters(id) -> (bytes_upstream, bytes_downstream) of a live link, or None"},
    {"reap", (PyCFunction)Relay_reap, METH_NOARGS,
     "reap() -> [(id, bytes_upstream, bytes_downstream)]: links that ended since the last call"},
    {"stop", (PyCFunction)Relay_stop, METH_NOARGS, "stop the relay thread and close every link still relayed"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Relay_getset[] = {
    {"notify_fd", (getter)Relay_get_notify_fd, NULL, "readable when reap() has something (-1 once stopped)", NULL},
    {"links", (getter)Relay_get_links, NULL, "number of links being relayed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RelayType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gonogo.faults._relay.Relay",
    .tp_basicsize = sizeof(Relay),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Relays proxied TCP connections on its own thread (epoll, read/send), see _relay.c",
    .tp_new = Relay_new,
    .tp_dealloc = (destructor)Relay_dealloc,
    .tp_methods = Relay_methods,
    .tp_getset = Relay_getset,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "gonogo.faults._relay", "The fault proxy's C relay for links without toxics.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__relay(void) {
    if (PyType_Ready(&RelayType) < 0) return NULL;
    PyObject *module = PyModule_Create(&moduledef);
    if (module == NULL) return NULL;
    Py_INCREF(&RelayType);
    if (PyModule_AddObject(module, "Relay", (PyObject *)&RelayType) < 0) {
        Py_DECREF(&RelayType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "BUFFER_SIZE", BUF_SIZE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
