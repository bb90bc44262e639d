/*
 * wsload: a small WebSocket load generator for fastws's benchmarks.
 *
 *   wsload handshake --port P [--concurrency 64] [--duration S] [--size 16]
 *                    [--host 127.0.0.1] [--path /] [--warmup S] [--timeout S]
 *                    [--max-errors N] [--cpu N] [--raw 1]
 *   wsload broadcast --port P --clients N --messages K [--size 64]
 *                    [--host 127.0.0.1] [--path /] [--concurrency 128]
 *                    [--timeout S] [--cpu N]
 *
 * handshake: keeps CONCURRENCY sessions in flight for DURATION seconds. A
 * session is: TCP connect, HTTP upgrade request (random Sec-WebSocket-Key; the
 * 101 status, Upgrade, Connection and Sec-WebSocket-Accept are checked), one
 * masked binary message of SIZE random bytes, its echo read and compared, a
 * close frame 1000 sent, the server's close frame read, then the end of the
 * TCP stream awaited before closing: the server closes first (RFC 6455 7.1.1),
 * so the TIME_WAIT state stays on the server's side and the client's ephemeral
 * ports are free again at once (28,000 ports at 20,000 sessions/s would run out
 * in under two seconds otherwise).
 * With --raw 1, a session is plain TCP, the floor under the WebSocket ones:
 * connect, SIZE random bytes sent, the same bytes read back, then the end of
 * the stream awaited (the server closes first) and the socket closed.
 *
 * broadcast: opens CLIENTS connections (CONCURRENCY handshakes at a time),
 * then the first sends the text message "bcast K SIZE"; the server answers by
 * sending K binary messages of SIZE bytes to every connection, each payload
 * starting with its index 0..K-1 in 4 bytes big-endian. wsload records when
 * the first and the last client received each message, relative to the moment
 * the trigger was written, then closes every connection cleanly.
 *
 * Output: one line of JSON on stdout. Failures of the peer (a bad Accept, an
 * early close, a wrong echo, a timeout) are counted in "errors" by kind, the
 * first one described in "first_error"; the exit status is 0 then. A bad
 * command line or a setup failure (file descriptor limit, epoll) prints a
 * message on stderr and exits with status 2.
 *
 * Every wait is bounded: a session or connection that makes no progress within
 * --timeout seconds is an error; the run ends after DURATION plus at most
 * twice --timeout of draining, and stops early after --max-errors errors.
 *
 * No dependencies beyond libc (Linux: epoll, sched_setaffinity, getrandom).
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept.                 */

typedef struct {
    uint32_t h[5];
    uint64_t length;
    uint8_t block[64];
    size_t used;
} sha1_ctx;

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(sha1_ctx *c, const uint8_t *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = c->h[0], b = c->h[1], d = c->h[3], e = c->h[4], cc = c->h[2];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & cc) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ cc ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDC; }
        else { f = b ^ cc ^ d; k = 0xCA62C1D6; }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d; d = cc; cc = rol32(b, 30); b = a; a = t;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

static void sha1_init(sha1_ctx *c) {
    static const uint32_t h0[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    memcpy(c->h, h0, sizeof h0);
    c->length = 0;
    c->used = 0;
}

static void sha1_update(sha1_ctx *c, const void *data, size_t n) {
    const uint8_t *p = data;
    c->length += n;
    while (n > 0) {
        size_t take = 64 - c->used;
        if (take > n) take = n;
        memcpy(c->block + c->used, p, take);
        c->used += take; p += take; n -= take;
        if (c->used == 64) { sha1_block(c, c->block); c->used = 0; }
    }
}

static void sha1_final(sha1_ctx *c, uint8_t out[20]) {
    uint64_t bits = c->length * 8;
    uint8_t pad = 0x80;
    sha1_update(c, &pad, 1);
    pad = 0;
    while (c->used != 56) sha1_update(c, &pad, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(c, len, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24); out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8); out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

/* Writes the base64 of n bytes and a NUL: 4 * ceil(n / 3) + 1 bytes. */
static void base64(const uint8_t *in, size_t n, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = abc[v >> 18]; *out++ = abc[(v >> 12) & 63]; *out++ = abc[(v >> 6) & 63]; *out++ = abc[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = abc[v >> 18]; *out++ = abc[(v >> 12) & 63]; *out++ = '='; *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = abc[v >> 18]; *out++ = abc[(v >> 12) & 63]; *out++ = abc[(v >> 6) & 63]; *out++ = '=';
    }
    *out = 0;
}

/* ------------------------------------------------------------------------ */
/* Small helpers.                                                           */

static uint64_t rng_state;

static uint64_t rng_next(void) { /* xorshift64*: masks, keys, payloads */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void rng_fill(uint8_t *p, size_t n) {
    while (n >= 8) { uint64_t v = rng_next(); memcpy(p, &v, 8); p += 8; n -= 8; }
    if (n) { uint64_t v = rng_next(); memcpy(p, &v, n); }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("wsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ------------------------------------------------------------------------ */
/* Errors, counted by kind.                                                 */

enum err_kind {
    E_CONNECT, E_RESET, E_IO, E_TIMEOUT, E_HTTP_STATUS, E_HTTP_MALFORMED, E_HTTP_TOO_LONG, E_BAD_ACCEPT,
    E_MISSING_ACCEPT, E_BAD_UPGRADE, E_EXTENSION, E_EOF_EARLY, E_BAD_FRAME, E_UNEXPECTED_FRAME, E_ECHO_MISMATCH,
    E_CLOSE_CODE, E_DATA_AFTER_CLOSE, E_NO_SERVER_CLOSE, E_CLOSED_EARLY, E_ORDER, E_KINDS
};

static const char *err_names[E_KINDS] = {
    "connect", "reset", "io", "timeout", "http_status", "http_malformed", "http_too_long", "bad_accept",
    "missing_accept", "bad_upgrade", "extension", "eof_early", "bad_frame", "unexpected_frame", "echo_mismatch",
    "close_code", "data_after_close", "no_server_close", "closed_early", "order",
};

static long long err_counts[E_KINDS];
static long long err_total;
static char first_error[256];

static void record_error(enum err_kind kind, const char *fmt, ...) {
    err_counts[kind]++;
    err_total++;
    if (!first_error[0]) {
        int n = snprintf(first_error, sizeof first_error, "%s: ", err_names[kind]);
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof first_error) vsnprintf(first_error + n, sizeof first_error - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

/* Prints s as a JSON string (printable ASCII kept, the rest escaped). */
static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20 || ch > 0x7e) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void json_errors(void) {
    printf("\"errors\":{");
    int first = 1;
    for (int k = 0; k < E_KINDS; k++) {
        if (!err_counts[k]) continue;
        printf("%s\"%s\":%lld", first ? "" : ",", err_names[k], err_counts[k]);
        first = 0;
    }
    printf("},\"error_total\":%lld,\"first_error\":", err_total);
    if (first_error[0]) json_string(first_error); else printf("null");
}

/* ------------------------------------------------------------------------ */
/* Connections.                                                             */

enum state {
    S_IDLE,       /* no socket */
    S_CONNECTING, /* connect() in progress */
    S_RESPONSE,   /* request queued or sent, reading the HTTP response */
    S_OPEN,       /* handshake done; messages flow */
    S_CLOSING,    /* our close frame queued; reading the server's */
    S_WAIT_EOF,   /* close frames exchanged; waiting for the server to close TCP */
};

#define HTTP_MAX 4096 /* longest HTTP response accepted */

typedef struct {
    int fd;
    enum state state;
    uint32_t gen;         /* incremented per socket: stale epoll events are ignored */
    int want_out;         /* EPOLLOUT registered */
    double started;       /* session start */
    double deadline;      /* no progress by then: timeout */
    char accept[32];      /* expected Sec-WebSocket-Accept */
    uint8_t *in;          /* bytes received, not yet consumed */
    size_t in_len;
    uint8_t *out;         /* bytes to send */
    size_t out_len, out_off;
    uint8_t *payload;     /* handshake mode: the message whose echo is awaited */
    uint32_t next_index;  /* broadcast mode: index of the next message expected */
} conn;

static struct {
    int handshake_mode;
    int raw;
    const char *host;
    const char *path;
    int port;
    int concurrency;
    double duration, warmup, timeout;
    size_t size;
    long long max_errors;
    long clients;
    long messages;
    int cpu;
} opt = {0, 0, "127.0.0.1", "/", 0, -1, 1.0, 0.0, 5.0, (size_t)-1, 1000, 0, 0, -1};

static int ep;
static struct sockaddr_in server_addr;
static long live;          /* sockets open */
static long handshaking;   /* sockets not yet through the HTTP upgrade */
static long pending;       /* broadcast: open connections still missing messages */
static int bcast_phase;    /* broadcast: 0 connecting, 1 receiving, 2 closing */
static conn *conns;
static size_t in_cap, out_cap;
static char host_header[300];

static uint64_t ev_data(size_t i) { return (uint64_t)conns[i].gen << 32 | (uint64_t)i; }

static void set_events(size_t i, int op) {
    conn *c = &conns[i];
    struct epoll_event ev = {.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0), .data.u64 = ev_data(i)};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

/* Closes the socket (if any) and returns the slot to S_IDLE. */
static void drop(size_t i) {
    conn *c = &conns[i];
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        live--;
        if (c->state == S_CONNECTING || c->state == S_RESPONSE) handshaking--;
        if (bcast_phase == 1 && c->state == S_OPEN && c->next_index < (uint32_t)opt.messages) pending--;
    }
    c->fd = -1;
    c->state = S_IDLE;
    c->in_len = c->out_len = c->out_off = 0;
    c->want_out = 0;
}

/* Appends n bytes to the output buffer (sized for the largest burst we queue). */
static void queue_out(conn *c, const void *data, size_t n) {
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > out_cap) { /* never happens: out_cap covers request + message + close */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n > out_cap) die("internal error: output buffer of %zu bytes too small", out_cap);
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
}

/* Queues one masked frame from the client. */
static void queue_frame(conn *c, int opcode, const uint8_t *payload, size_t n) {
    uint8_t head[14];
    size_t h = 0;
    head[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) head[h++] = (uint8_t)(0x80 | n);
    else if (n < 65536) { head[h++] = 0x80 | 126; head[h++] = (uint8_t)(n >> 8); head[h++] = (uint8_t)n; }
    else { head[h++] = 0x80 | 127; for (int s = 56; s >= 0; s -= 8) head[h++] = (uint8_t)((uint64_t)n >> s); }
    uint8_t mask[4];
    uint64_t r = rng_next();
    memcpy(mask, &r, 4);
    memcpy(head + h, mask, 4);
    h += 4;
    queue_out(c, head, h);
    uint8_t *dst = c->out + c->out_len;
    if (c->out_len + n > out_cap) die("internal error: output buffer of %zu bytes too small", out_cap);
    for (size_t k = 0; k < n; k++) dst[k] = payload[k] ^ mask[k & 3];
    c->out_len += n;
}

/* Writes what is queued; returns 0, or -1 after recording an error. */
static int flush_out(size_t i) {
    conn *c = &conns[i];
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) { c->out_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) { c->want_out = 1; set_events(i, EPOLL_CTL_MOD); }
            return 0;
        }
        if (errno == ECONNRESET || errno == EPIPE) record_error(E_RESET, "send: %s", strerror(errno));
        else record_error(E_IO, "send: %s", strerror(errno));
        return -1;
    }
    c->out_off = c->out_len = 0;
    if (c->want_out) { c->want_out = 0; set_events(i, EPOLL_CTL_MOD); }
    return 0;
}

/* Starts a connection in slot i: socket, connect, request queued. 0 or -1. */
static int start_conn(size_t i, double now) {
    conn *c = &conns[i];
    c->gen++;
    c->started = now;
    c->deadline = now + opt.timeout;
    c->in_len = c->out_len = c->out_off = 0;
    c->next_index = 0;
    c->want_out = 1; /* until connect() completes */
    c->state = S_IDLE;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        record_error(E_CONNECT, "socket(): %s", strerror(errno));
        return -1;
    }
    live++;
    handshaking++;
    c->state = S_CONNECTING;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 && errno != EINPROGRESS) {
        record_error(E_CONNECT, "%s", strerror(errno));
        drop(i);
        return -1;
    }
    /* The request (or, with --raw, the payload) goes out once connect()
       completes (EPOLLOUT). */
    if (opt.raw) {
        rng_fill(c->payload, opt.size);
        queue_out(c, c->payload, opt.size);
        set_events(i, EPOLL_CTL_ADD);
        return 0;
    }
    uint8_t key_bytes[16];
    char key[32];
    rng_fill(key_bytes, sizeof key_bytes);
    base64(key_bytes, sizeof key_bytes, key);
    sha1_ctx sha;
    uint8_t digest[20];
    sha1_init(&sha);
    sha1_update(&sha, key, strlen(key));
    sha1_update(&sha, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    sha1_final(&sha, digest);
    base64(digest, sizeof digest, c->accept);
    char request[768];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     opt.path, host_header, key);
    if (n < 0 || (size_t)n >= sizeof request) die("request too long (--path?)");
    queue_out(c, request, (size_t)n);
    set_events(i, EPOLL_CTL_ADD);
    return 0;
}

/* Case-insensitive: does the comma-separated list contain token? */
static int has_token(const char *value, size_t n, const char *token) {
    size_t t = strlen(token), k = 0;
    while (k < n) {
        while (k < n && (value[k] == ' ' || value[k] == '\t' || value[k] == ',')) k++;
        size_t start = k;
        while (k < n && value[k] != ',') k++;
        size_t end = k;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t')) end--;
        if (end - start == t && strncasecmp(value + start, token, t) == 0) return 1;
    }
    return 0;
}

/* Checks the HTTP response in c->in[0..head_len). 0 if it accepts the upgrade. */
static int check_response(conn *c, size_t head_len) {
    const char *p = (const char *)c->in, *end = p + head_len;
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol || eol - p < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0) {
        record_error(E_HTTP_MALFORMED, "status line %.*s", (int)(eol ? (eol - p < 60 ? eol - p : 60) : 0), p);
        return -1;
    }
    if (memcmp(p + 9, "101", 3) != 0 || (eol - p > 12 && p[12] != ' ')) {
        record_error(E_HTTP_STATUS, "%.*s", (int)(eol - p < 60 ? eol - p : 60), p);
        return -1;
    }
    int upgrade = 0, connection = 0, accept = 0;
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) eol = end;
        if (eol == p) break; /* the empty line */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon) { record_error(E_HTTP_MALFORMED, "header line without a colon"); return -1; }
        size_t name_len = (size_t)(colon - p);
        const char *v = colon + 1, *v_end = eol;
        while (v < v_end && (*v == ' ' || *v == '\t')) v++;
        while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t')) v_end--;
        size_t v_len = (size_t)(v_end - v);
        if (name_len == 7 && strncasecmp(p, "Upgrade", 7) == 0) upgrade |= has_token(v, v_len, "websocket");
        else if (name_len == 10 && strncasecmp(p, "Connection", 10) == 0) connection |= has_token(v, v_len, "upgrade");
        else if (name_len == 20 && strncasecmp(p, "Sec-WebSocket-Accept", 20) == 0) {
            if (accept) { record_error(E_BAD_ACCEPT, "two Sec-WebSocket-Accept headers"); return -1; }
            accept = 1;
            if (v_len != strlen(c->accept) || memcmp(v, c->accept, v_len) != 0) {
                record_error(E_BAD_ACCEPT, "got %.*s, expected %s", (int)(v_len < 40 ? v_len : 40), v, c->accept);
                return -1;
            }
        } else if (name_len == 24 && strncasecmp(p, "Sec-WebSocket-Extensions", 24) == 0) {
            record_error(E_EXTENSION, "extension %.*s not requested", (int)(v_len < 60 ? v_len : 60), v);
            return -1;
        }
    }
    if (!accept) { record_error(E_MISSING_ACCEPT, "no Sec-WebSocket-Accept header"); return -1; }
    if (!upgrade || !connection) { record_error(E_BAD_UPGRADE, "Upgrade: websocket or Connection: upgrade missing"); return -1; }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Run state shared by both modes.                                          */

static size_t nconns;
static long long sessions_window, sessions_total;     /* handshake mode */
static double window_start, window_end;
static double *latencies;
static size_t latencies_len, latencies_cap;
static long ready_count;                               /* broadcast mode */
static long long deliveries;
static double trigger_at, last_delivery;
static double *first_at, *last_at;
static long *received;

/* Handshake mode: the session in slot i completed (server closed TCP). */
static void session_done(size_t i, double now) {
    conn *c = &conns[i];
    sessions_total++;
    /* Throughput counts the sessions that ended within the window. */
    if (now >= window_start && now <= window_end) {
        sessions_window++;
        if (latencies_len == latencies_cap) {
            latencies_cap = latencies_cap ? latencies_cap * 2 : 65536;
            latencies = realloc(latencies, latencies_cap * sizeof *latencies);
            if (!latencies) die("out of memory");
        }
        latencies[latencies_len++] = now - c->started;
    }
}

/* A broadcast-mode frame; returns 0 or -1 (error recorded). */
static int on_broadcast_message(size_t i, const uint8_t *payload, size_t n, double now) {
    conn *c = &conns[i];
    if (bcast_phase != 1) { record_error(E_UNEXPECTED_FRAME, "binary message before the trigger"); return -1; }
    if (n != opt.size || n < 4) { record_error(E_BAD_FRAME, "message of %zu bytes, expected %zu", n, opt.size); return -1; }
    uint32_t index = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 | (uint32_t)payload[2] << 8 | payload[3];
    if (index != c->next_index || index >= (uint32_t)opt.messages) {
        record_error(E_ORDER, "message %u, expected %u", index, c->next_index);
        return -1;
    }
    c->next_index++;
    if (c->next_index == (uint32_t)opt.messages) pending--;
    deliveries++;
    last_delivery = now;
    if (!received[index]++) first_at[index] = now;
    if (received[index] == ready_count) last_at[index] = now;
    return 0;
}

/* Sends our close frame (code 1000) and moves to S_CLOSING. */
static int start_close(size_t i, double now) {
    conn *c = &conns[i];
    static const uint8_t code[2] = {0x03, 0xE8};
    queue_frame(c, 0x8, code, 2);
    c->state = S_CLOSING;
    c->deadline = now + opt.timeout;
    return flush_out(i);
}

/* Parses the frames in c->in; 0, or -1 after recording an error. */
static int on_frames(size_t i, double now) {
    conn *c = &conns[i];
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && c->fd >= 0) {
        size_t avail = c->in_len - off;
        const uint8_t *p = c->in + off;
        if (avail && c->state == S_WAIT_EOF) {
            record_error(E_DATA_AFTER_CLOSE, "%zu bytes after the close frame", avail);
            return -1;
        }
        if (avail < 2) break;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0F;
        if (p[0] & 0x70) { record_error(E_BAD_FRAME, "reserved bits set (0x%02x)", p[0]); return -1; }
        if (p[1] & 0x80) { record_error(E_BAD_FRAME, "masked frame from the server"); return -1; }
        uint64_t len = p[1] & 0x7F;
        size_t h = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int k = 0; k < 8; k++) len = len << 8 | p[2 + k];
            h = 10;
        }
        /* Every frame we accept fits in the buffer; a longer one is refused
           from its header, before its payload is awaited. */
        uint64_t limit = (opcode & 0x8) ? 125 : opt.size;
        if (len > limit) {
            record_error(E_BAD_FRAME, "frame (opcode %d) of %llu bytes, expected at most %llu", opcode,
                         (unsigned long long)len, (unsigned long long)limit);
            return -1;
        }
        if (avail - h < len) break;
        const uint8_t *payload = p + h;
        off += h + (size_t)len;
        if (opcode == 0x9 || opcode == 0xA) continue; /* ping, pong: ignored */
        if (opcode == 0x8) {
            if (c->state != S_CLOSING) {
                record_error(E_CLOSED_EARLY, "server sent a close frame first");
                return -1;
            }
            int code = len >= 2 ? payload[0] << 8 | payload[1] : 1005;
            if (code != 1000) { record_error(E_CLOSE_CODE, "close code %d", code); return -1; }
            c->state = S_WAIT_EOF;
            c->deadline = now + opt.timeout;
            continue;
        }
        if (c->state == S_CLOSING && (opcode == 0x1 || opcode == 0x2 || opcode == 0x0))
            continue; /* sent before the server saw our close frame: discarded */
        if (!fin || (opcode != 0x2 && opcode != 0x1) || c->state != S_OPEN) {
            record_error(E_UNEXPECTED_FRAME, "opcode %d fin %d in state %d", opcode, !!fin, c->state);
            return -1;
        }
        if (opt.handshake_mode) {
            if (opcode != 0x2 || len != opt.size || memcmp(payload, c->payload, (size_t)len) != 0) {
                record_error(E_ECHO_MISMATCH, "echo of %llu bytes (opcode %d) differs from the %zu sent",
                             (unsigned long long)len, opcode, opt.size);
                return -1;
            }
            rc = start_close(i, now);
        } else {
            if (opcode != 0x2) { record_error(E_UNEXPECTED_FRAME, "text message during the broadcast"); return -1; }
            rc = on_broadcast_message(i, payload, (size_t)len, now);
        }
    }
    if (c->fd >= 0 && off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return rc;
}

/* The HTTP response completed in slot i: go on with the session. */
static int on_open(size_t i, double now) {
    conn *c = &conns[i];
    c->state = S_OPEN;
    handshaking--;
    c->deadline = now + opt.timeout;
    if (opt.handshake_mode) {
        rng_fill(c->payload, opt.size);
        queue_frame(c, 0x2, c->payload, opt.size);
        return flush_out(i);
    }
    /* An open broadcast connection waits for the trigger without a deadline
       of its own: the broadcast phase has one. */
    c->deadline = 1e300;
    ready_count++;
    return 0;
}

/* Reads what is there and handles it; 0, or -1 if the slot must be dropped
   (error recorded, or a handshake-mode session complete: *done set). */
static int on_readable(size_t i, double now, int *done) {
    conn *c = &conns[i];
    for (;;) {
        if (c->in_len == in_cap) { /* cannot happen after on_frames; the HTTP head is bounded below */
            record_error(E_HTTP_TOO_LONG, "%zu bytes without a complete response", in_cap);
            return -1;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, in_cap - c->in_len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            if (errno == ECONNRESET) record_error(E_RESET, "recv in state %d: %s", c->state, strerror(errno));
            else record_error(E_IO, "recv: %s", strerror(errno));
            return -1;
        }
        if (n == 0) {
            if (c->state == S_WAIT_EOF && c->in_len == 0) { *done = 1; return -1; }
            record_error(E_EOF_EARLY, "server closed TCP in state %d", c->state);
            return -1;
        }
        c->in_len += (size_t)n;
        if (opt.raw) {
            if (c->state != S_OPEN || c->in_len > opt.size) {
                record_error(E_ECHO_MISMATCH, "%zu bytes back, %zu sent", c->in_len, opt.size);
                return -1;
            }
            if (c->in_len == opt.size) {
                if (memcmp(c->in, c->payload, opt.size) != 0) {
                    record_error(E_ECHO_MISMATCH, "the %zu bytes back differ from those sent", opt.size);
                    return -1;
                }
                c->state = S_WAIT_EOF;
                c->in_len = 0;
                c->deadline = now + opt.timeout;
            }
            continue;
        }
        if (c->state == S_RESPONSE) {
            size_t scan = c->in_len < HTTP_MAX ? c->in_len : HTTP_MAX;
            uint8_t *end = memmem(c->in, scan, "\r\n\r\n", 4);
            if (!end) {
                if (c->in_len >= HTTP_MAX) {
                    record_error(E_HTTP_TOO_LONG, "no end of the HTTP response in %d bytes", HTTP_MAX);
                    return -1;
                }
                continue;
            }
            size_t head_len = (size_t)(end - c->in) + 4;
            if (check_response(c, head_len) < 0) return -1;
            memmove(c->in, c->in + head_len, c->in_len - head_len);
            c->in_len -= head_len;
            if (on_open(i, now) < 0) return -1;
        }
        if (c->state != S_RESPONSE && on_frames(i, now) < 0) return -1;
    }
}

/* An epoll event for slot i. Returns 1 if the slot was dropped. */
static int on_event(size_t i, uint32_t events, double now) {
    conn *c = &conns[i];
    int done = 0;
    if (c->state == S_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return 0;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err) { record_error(E_CONNECT, "%s", strerror(err)); goto fail; }
        c->state = opt.raw ? S_OPEN : S_RESPONSE;
        if (opt.raw) handshaking--;
        c->deadline = now + opt.timeout;
        if (flush_out(i) < 0) goto fail;
        return 0;
    }
    if ((events & EPOLLOUT) && c->out_off < c->out_len && flush_out(i) < 0) goto fail;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (on_readable(i, now, &done) < 0) goto fail;
    }
    return 0;
fail:
    if (done && opt.handshake_mode) session_done(i, now);
    drop(i);
    return 1;
}

/* Waits up to timeout_ms for events and handles them; after_drop(i, now), if
   given, is called for every slot dropped. */
static void epoll_round(int timeout_ms, void (*after_drop)(size_t, double)) {
    struct epoll_event events[512];
    int n = epoll_wait(ep, events, 512, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_wait: %s", strerror(errno));
    }
    double now = now_s();
    for (int k = 0; k < n; k++) {
        size_t i = (size_t)(events[k].data.u64 & 0xFFFFFFFFu);
        uint32_t gen = (uint32_t)(events[k].data.u64 >> 32);
        if (i >= nconns || conns[i].fd < 0 || conns[i].gen != gen) continue;
        if (on_event(i, events[k].events, now) && after_drop) after_drop(i, now);
    }
}

/* Drops every slot past its deadline (an error); calls after_drop for each. */
static void expire(double now, void (*after_drop)(size_t, double)) {
    for (size_t i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (c->fd < 0 || now < c->deadline) continue;
        if (c->state == S_WAIT_EOF) record_error(E_NO_SERVER_CLOSE, "server did not close TCP after the close frames");
        else record_error(E_TIMEOUT, "no progress in %.1f s in state %d", opt.timeout, c->state);
        drop(i);
        if (after_drop) after_drop(i, now);
    }
}

static void alloc_conns(size_t n) {
    nconns = n;
    conns = calloc(n, sizeof *conns);
    if (!conns) die("out of memory");
    for (size_t i = 0; i < n; i++) {
        conns[i].fd = -1;
        conns[i].in = malloc(in_cap);
        conns[i].out = malloc(out_cap);
        conns[i].payload = opt.handshake_mode ? malloc(opt.size ? opt.size : 1) : NULL;
        if (!conns[i].in || !conns[i].out || (opt.handshake_mode && !conns[i].payload)) die("out of memory");
    }
}

/* ------------------------------------------------------------------------ */
/* handshake mode                                                           */

static int stopping;
static double hs_start;

static void restart_slot(size_t i, double now) {
    if (stopping) return;
    if (err_total >= opt.max_errors) { stopping = 1; return; }
    start_conn(i, now); /* a failure is recorded; the slot stays idle until the next round */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double p) {
    if (!latencies_len) return 0;
    size_t k = (size_t)(p * (double)(latencies_len - 1) + 0.5);
    return latencies[k] * 1e3;
}

static void run_handshake(void) {
    alloc_conns((size_t)opt.concurrency);
    hs_start = now_s();
    window_start = hs_start + opt.warmup;
    window_end = window_start + opt.duration;
    for (size_t i = 0; i < nconns; i++) restart_slot(i, hs_start);
    double last_scan = hs_start, now = hs_start;
    int aborted = 0;
    while (now < window_end && !stopping) {
        epoll_round(10, restart_slot);
        now = now_s();
        if (now - last_scan >= 0.01) {
            expire(now, restart_slot);
            for (size_t i = 0; i < nconns && !stopping; i++)
                if (conns[i].fd < 0) restart_slot(i, now); /* slots whose restart failed */
            last_scan = now;
        }
    }
    if (stopping && now < window_end) aborted = 1;
    double measured_end = now < window_end ? now : window_end;
    /* Drain: let the sessions in flight finish (they count in "completed"
       only). Each is dropped as an error once it goes --timeout without
       progress; twice that bounds the drain even for one that crawls on. */
    stopping = 1;
    double drain_end = now + 2 * opt.timeout;
    size_t unfinished = 0;
    for (;;) {
        if (!live || now >= drain_end) { unfinished = (size_t)live; break; }
        epoll_round(10, NULL);
        now = now_s();
        expire(now, NULL);
    }
    for (size_t i = 0; i < nconns; i++) drop(i);
    double seconds = measured_end - window_start;
    if (seconds < 0) seconds = 0;
    qsort(latencies, latencies_len, sizeof *latencies, cmp_double);
    printf("{\"mode\":\"%s\",", opt.raw ? "raw" : "handshake");
    printf("\"sessions\":%lld,\"seconds\":%.6f,\"rate\":%.3f,\"completed\":%lld,"
           "\"unfinished\":%zu,\"concurrency\":%d,\"size\":%zu,\"aborted\":%s,",
           sessions_window, seconds, seconds > 0 ? (double)sessions_window / seconds : 0.0, sessions_total,
           unfinished, opt.concurrency, opt.size, aborted ? "true" : "false");
    printf("\"latency_ms\":{\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"max\":%.4f},", percentile(0.5),
           percentile(0.9), percentile(0.99), latencies_len ? latencies[latencies_len - 1] * 1e3 : 0.0);
    json_errors();
    printf("}\n");
}

/* ------------------------------------------------------------------------ */
/* broadcast mode                                                           */

static void run_broadcast(void) {
    alloc_conns((size_t)opt.clients);
    first_at = calloc((size_t)opt.messages, sizeof *first_at);
    last_at = calloc((size_t)opt.messages, sizeof *last_at);
    received = calloc((size_t)opt.messages, sizeof *received);
    if (!first_at || !last_at || !received) die("out of memory");
    double start = now_s(), now = start;

    /* Phase 0: open the connections, --concurrency handshakes at a time. */
    double last_scan = now;
    size_t next_to_open = 0;
    for (;;) {
        while (next_to_open < nconns && handshaking < opt.concurrency && err_total < opt.max_errors)
            start_conn(next_to_open++, now);
        if (!handshaking && (next_to_open == nconns || err_total >= opt.max_errors)) break;
        epoll_round(10, NULL);
        now = now_s();
        if (now - last_scan >= 0.01) { expire(now, NULL); last_scan = now; }
    }
    double connect_seconds = now - start;
    size_t trigger = nconns;
    for (size_t i = 0; i < nconns && trigger == nconns; i++)
        if (conns[i].fd >= 0) trigger = i;
    long connected = ready_count;
    if (trigger < nconns && opt.messages > 0) {
        char text[64];
        int n = snprintf(text, sizeof text, "bcast %ld %zu", opt.messages, opt.size);
        bcast_phase = 1;
        pending = live;
        trigger_at = now_s();
        queue_frame(&conns[trigger], 0x1, (const uint8_t *)text, (size_t)n);
        if (flush_out(trigger) < 0) drop(trigger);
        /* Phase 1: until every open connection has every message, or no
           delivery for --timeout. */
        double quiet_end = trigger_at + opt.timeout;
        long long seen = 0;
        while (pending > 0) {
            now = now_s();
            if (deliveries != seen) { seen = deliveries; quiet_end = now + opt.timeout; }
            if (now >= quiet_end) {
                record_error(E_TIMEOUT, "%ld connections still missing messages after %.1f s without one",
                             pending, opt.timeout);
                break;
            }
            epoll_round(10, NULL);
        }
    }
    double seconds = deliveries ? last_delivery - trigger_at : 0;

    /* Phase 2: close every connection cleanly, all at once. */
    bcast_phase = 2;
    now = now_s();
    for (size_t i = 0; i < nconns; i++) {
        if (conns[i].fd < 0 || conns[i].state != S_OPEN) continue;
        if (start_close(i, now) < 0) drop(i);
    }
    last_scan = now;
    while (live > 0) {
        epoll_round(10, NULL);
        now = now_s();
        if (now - last_scan >= 0.01) { expire(now, NULL); last_scan = now; }
    }

    printf("{\"mode\":\"broadcast\",\"clients\":%ld,\"connected\":%ld,\"messages\":%ld,\"size\":%zu,"
           "\"connect_seconds\":%.6f,\"first_ms\":[",
           opt.clients, connected, opt.messages, opt.size, connect_seconds);
    for (long k = 0; k < opt.messages; k++) {
        if (received[k]) printf("%s%.4f", k ? "," : "", (first_at[k] - trigger_at) * 1e3);
        else printf("%snull", k ? "," : "");
    }
    printf("],\"last_ms\":[");
    for (long k = 0; k < opt.messages; k++) {
        if (connected && received[k] >= connected) printf("%s%.4f", k ? "," : "", (last_at[k] - trigger_at) * 1e3);
        else printf("%snull", k ? "," : "");
    }
    /* The trigger and the last delivery on CLOCK_MONOTONIC, the clock of
       Python's time.monotonic() on Linux: a caller sampling the server's CPU
       time places the burst's window with them, without its own guess of
       when this process started. */
    printf("],\"deliveries\":%lld,\"seconds\":%.6f,\"trigger_monotonic\":%.6f,\"end_monotonic\":%.6f,",
           deliveries, seconds, trigger_at, deliveries ? last_delivery : trigger_at);
    json_errors();
    printf("}\n");
}

/* ------------------------------------------------------------------------ */
/* Command line.                                                            */

static void usage(void) {
    fputs("usage: wsload handshake --port P [--concurrency 64] [--duration S] [--size 16] [--host H]\n"
          "                        [--path /] [--warmup S] [--timeout S] [--max-errors N] [--cpu N]\n"
          "                        [--raw 1]\n"
          "       wsload broadcast --port P --clients N --messages K [--size 64] [--host H] [--path /]\n"
          "                        [--concurrency 128] [--timeout S] [--max-errors N] [--cpu N]\n",
          stderr);
    exit(2);
}

static double parse_num(const char *name, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) die("%s %s: expected a number from %g to %g", name, s, lo, hi);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (strcmp(argv[1], "handshake") == 0) opt.handshake_mode = 1;
    else if (strcmp(argv[1], "broadcast") != 0) usage();
    for (int k = 2; k < argc; k++) {
        const char *name = argv[k];
        if (k + 1 >= argc) die("%s needs a value", name);
        const char *v = argv[++k];
        if (!strcmp(name, "--port")) opt.port = (int)parse_num(name, v, 1, 65535);
        else if (!strcmp(name, "--host")) opt.host = v;
        else if (!strcmp(name, "--path")) opt.path = v;
        else if (!strcmp(name, "--concurrency")) opt.concurrency = (int)parse_num(name, v, 1, 100000);
        else if (!strcmp(name, "--duration") && opt.handshake_mode) opt.duration = parse_num(name, v, 0.01, 3600);
        else if (!strcmp(name, "--warmup") && opt.handshake_mode) opt.warmup = parse_num(name, v, 0, 3600);
        else if (!strcmp(name, "--timeout")) opt.timeout = parse_num(name, v, 0.01, 3600);
        else if (!strcmp(name, "--size")) opt.size = (size_t)parse_num(name, v, 0, 1 << 24);
        else if (!strcmp(name, "--max-errors")) opt.max_errors = (long long)parse_num(name, v, 1, 1e12);
        else if (!strcmp(name, "--clients") && !opt.handshake_mode) opt.clients = (long)parse_num(name, v, 1, 1e7);
        else if (!strcmp(name, "--messages") && !opt.handshake_mode) opt.messages = (long)parse_num(name, v, 0, 10000000);
        else if (!strcmp(name, "--raw") && opt.handshake_mode) opt.raw = (int)parse_num(name, v, 0, 1);
        else if (!strcmp(name, "--cpu")) opt.cpu = (int)parse_num(name, v, 0, CPU_SETSIZE - 1);
        else die("unknown option %s for %s", name, argv[1]);
    }
    if (!opt.port) die("--port is required");
    if (!opt.handshake_mode && !opt.clients) die("--clients is required");
    if (opt.size == (size_t)-1) opt.size = opt.handshake_mode ? 16 : 64;
    if (opt.raw && opt.size < 1) die("--size 0: a raw session echoes at least one byte");
    if (!opt.handshake_mode && opt.size < 4) die("--size %zu: a broadcast message holds a 4-byte index", opt.size);
    if (opt.concurrency < 0) opt.concurrency = opt.handshake_mode ? 64 : 128;
    if (strlen(opt.path) > 256 || opt.path[0] != '/' || strpbrk(opt.path, " \r\n")) die("--path %s: expected /...", opt.path);

    if (!strcmp(opt.host, "localhost")) opt.host = "127.0.0.1";
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &server_addr.sin_addr) != 1) die("--host %s: expected an IPv4 address", opt.host);
    snprintf(host_header, sizeof host_header, "%s:%d", opt.host, opt.port);

    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) die("--cpu %d: %s", opt.cpu, strerror(errno));
    }

    /* File descriptors: one per connection, plus stdio and epoll. */
    rlim_t need = (rlim_t)(opt.handshake_mode ? opt.concurrency : opt.clients) + 16;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur < need) {
        struct rlimit want = {need, rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? rl.rlim_max : need};
        if (setrlimit(RLIMIT_NOFILE, &want) < 0)
            die("%ld connections need %llu file descriptors; the limit is %llu (hard %llu) and raising it failed: %s"
                " (raise it with ulimit -n, or as root)",
                opt.handshake_mode ? (long)opt.concurrency : opt.clients, (unsigned long long)need,
                (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, strerror(errno));
    }

    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    rng_state = seed | 1;

    in_cap = (opt.size + 14 > HTTP_MAX ? opt.size + 14 : HTTP_MAX);
    out_cap = 1024 + opt.size + 14 + 8 + 64 + 14;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1: %s", strerror(errno));
    if (opt.handshake_mode) run_handshake();
    else run_broadcast();
    fflush(stdout);
    return 0;
}
