/*
 * connload: a load generator for new connections, for scripts/bench.ts. Keeps C connections
 * busy, each doing, over and over: connect, send "PING\r\n" (or the bytes of PAYLOAD, a TLS
 * ClientHello say), read one reply line, close (normally, or with a reset: SO_LINGER 0). Prints
 * how many round trips completed and failed.
 *
 *   connload HOST PORT CONNECTIONS SECONDS close|reset [PAYLOAD]
 *
 * One thread, epoll, non-blocking sockets: it spends its time in the kernel, not in itself, so
 * that the proxy under test, not the generator, sets the rate. Written for the bench because the
 * tools at hand either reuse connections or spend more CPU per connection than the proxies do.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING, WAITING };

struct slot {
  int fd;
  int state;
};

static struct sockaddr_in target;
static int reset_close;
static long done_ok, failed;
static char payload[16384] = "PING\r\n";
static size_t payload_len = 6;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void finish(struct slot *s) {
  if (reset_close) {
    struct linger l = {1, 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(s->fd);
  s->fd = -1;
}

static int open_one(int ep, struct slot *s) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s->fd = fd;
  s->state = CONNECTING;
  if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
    close(fd);
    s->fd = -1;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = s};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: connload HOST PORT CONNECTIONS SECONDS close|reset [PAYLOAD]\n");
    return 2;
  }
  if (argc == 7) {
    FILE *f = fopen(argv[6], "rb");
    if (!f) {
      perror(argv[6]);
      return 2;
    }
    payload_len = fread(payload, 1, sizeof payload, f);
    fclose(f);
  }
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons(atoi(argv[2]));
  inet_pton(AF_INET, argv[1], &target.sin_addr);
  int n = atoi(argv[3]);
  double seconds = atof(argv[4]);
  reset_close = strcmp(argv[5], "reset") == 0;
  int ep = epoll_create1(0);
  struct slot *slots = calloc(n, sizeof *slots);
  for (int i = 0; i < n; i++) {
    if (open_one(ep, &slots[i]) < 0) failed++;
  }
  struct epoll_event events[256];
  double end = now() + seconds;
  while (now() < end) {
    int k = epoll_wait(ep, events, 256, 100);
    for (int i = 0; i < k; i++) {
      struct slot *s = events[i].data.ptr;
      if (s->fd < 0) continue;
      if (s->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
          failed++;
          epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
          close(s->fd);
          s->fd = -1;
          if (open_one(ep, s) < 0) failed++;
          continue;
        }
        if (write(s->fd, payload, payload_len) != (ssize_t)payload_len) {
          failed++;
          epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
          finish(s);
          if (open_one(ep, s) < 0) failed++;
          continue;
        }
        s->state = WAITING;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        continue;
      }
      char buf[64];
      ssize_t r = read(s->fd, buf, sizeof buf);
      if (r < 0 && errno == EAGAIN) continue;
      if (r > 0 && memchr(buf, '\n', r)) done_ok++;
      else failed++;
      epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
      finish(s);
      if (open_one(ep, s) < 0) failed++;
    }
  }
  printf("%ld %ld %.3f\n", done_ok, failed, seconds);
  return 0;
}
