/* Open-loop HTTP/1.1 load at a fixed rate, latency corrected for coordinated omission.
 *
 * Request i is due at start + i / rate, whatever happened to the ones before it. It goes out
 * on the first idle keep-alive connection; when none is idle it waits, and its latency still
 * counts from when it was due (what wrk2 calls the corrected latency), so a server that
 * stalls shows the stall in every request that queued behind it.
 *
 * Usage: openloop HOST PORT PATH RATE SECONDS CONNECTIONS
 * Prints key=value lines: sent, done, errors, rate, p50_ms, p90_ms, p99_ms, p999_ms, max_ms.
 * Built by bench/openloop.py with the machine's C compiler (`cc -O2`).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;          /* a request is out on it */
    double due;        /* when that request was due */
    char buf[65536];
    size_t len;
} Conn;

static struct sockaddr_in addr;
static char request[512];
static size_t request_len;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(int ep, Conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    c->fd = fd;
    c->busy = 0;
    c->len = 0;
    return 0;
}

/* Length of a complete response at the start of buf, 0 if incomplete, -1 if unparsable. */
static long complete(const char *buf, size_t len) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - buf) + 4;
    long body = -1;
    for (const char *p = buf; p && p < end; p = memmem(p, (size_t)(end - p), "\r\n", 2)) {
        p += 2;
        if (strncasecmp(p, "content-length:", 15) == 0) body = strtol(p + 15, NULL, 10);
    }
    if (body < 0) return -1;
    return len >= head + (size_t)body ? (long)(head + body) : 0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    return v[i >= n ? n - 1 : i];
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT PATH RATE SECONDS CONNECTIONS\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[4]), seconds = atof(argv[5]);
    int nconn = atoi(argv[6]);
    if (rate <= 0 || seconds <= 0 || nconn <= 0) return 2;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", argv[3], argv[1],
                                   argv[2]);

    int ep = epoll_create1(0);
    Conn *conns = calloc((size_t)nconn, sizeof(Conn));
    for (int i = 0; i < nconn; i++)
        if (open_conn(ep, &conns[i]) < 0) {
            perror("connect");
            return 1;
        }
    size_t total = (size_t)(rate * seconds);
    double *latency = malloc(total * sizeof(double));
    size_t sent = 0, done = 0, errors = 0;
    double start = now() + 0.01, interval = 1.0 / rate, drain_until = start + seconds + 5.0;
    struct epoll_event events[256];

    while (done + errors < total) {
        double t = now();
        if (t > drain_until) break;
        /* Send every due request that has an idle connection. */
        for (int i = 0; i < nconn && sent < total && start + sent * interval <= t; i++) {
            Conn *c = &conns[i];
            if (c->busy || c->fd < 0) continue;
            c->due = start + sent * interval;
            if (write(c->fd, request, request_len) != (ssize_t)request_len) {
                errors++;
                sent++;
                close(c->fd);
                c->fd = -1;
                open_conn(ep, c);
                continue;
            }
            c->busy = 1;
            sent++;
        }
        double next = sent < total ? start + sent * interval : t + 0.05;
        double wait = next - now();
        if (wait <= 0) wait = 0.05; /* due but every connection busy: wait for an answer */
        struct timespec timeout = {0, 0};
        if (wait > 0) {
            timeout.tv_sec = (time_t)wait;
            timeout.tv_nsec = (long)((wait - (double)timeout.tv_sec) * 1e9);
        }
        int n = epoll_pwait2(ep, events, 256, &timeout, NULL);
        if (n < 0 && errno != EINTR) {
            perror("epoll_pwait2");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            Conn *c = events[k].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                if (c->busy) errors++;
                close(c->fd);
                c->fd = -1;
                open_conn(ep, c);
                continue;
            }
            c->len += (size_t)r;
            long whole = complete(c->buf, c->len);
            if (whole < 0) {
                errors++;
                c->len = 0;
                c->busy = 0;
                continue;
            }
            if (whole > 0) {
                double at = now();
                if (c->busy) latency[done++] = at - c->due;
                memmove(c->buf, c->buf + whole, c->len - (size_t)whole);
                c->len -= (size_t)whole;
                c->busy = 0;
            }
        }
    }
    double elapsed = now() - start;
    qsort(latency, done, sizeof(double), cmp);
    printf("sent=%zu\ndone=%zu\nerrors=%zu\nrate=%.1f\n", sent, done, errors,
           done / (elapsed > seconds ? elapsed : seconds));
    printf("p50_ms=%.3f\np90_ms=%.3f\np99_ms=%.3f\np999_ms=%.3f\nmax_ms=%.3f\n",
           pct(latency, done, 50) * 1e3, pct(latency, done, 90) * 1e3,
           pct(latency, done, 99) * 1e3, pct(latency, done, 99.9) * 1e3,
           done ? latency[done - 1] * 1e3 : 0.0);
    return 0;
}
