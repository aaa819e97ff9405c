/*
 * Loopback TCP on 127.0.0.1: the physical limit for the replicator's stream and for a
 * heartbeat's round trip. Built and run by native-bench/native.ts.
 *
 *   tcp stream <seconds> <write_bytes>     a child process writes <write_bytes> chunks for
 *                                          <seconds>; the parent reads (256 KiB reads) and
 *                                          times first byte to end of stream: MB/s
 *   tcp pingpong <seconds> <message_bytes> the parent sends a message, a child process
 *                                          echoes it, the parent reads it whole, then the
 *                                          next: round trips/s, mean/p50/p99 µs. TCP_NODELAY
 *                                          on both ends, as PeerLink sets it
 *   tcp sink <hex>                         listens on an ephemeral port and prints
 *                                          {"port":N}; accepts one connection, writes the
 *                                          bytes <hex> (raftline's handshake answer), then
 *                                          reads until the peer closes, and prints the bytes
 *                                          read and the time from first to last byte
 *
 * Two processes, as two nodes would be. Prints one JSON line per run (two for sink).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_BYTES (256 * 1024)
#define MAX_SAMPLES (1u << 23)

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "tcp: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* A listening socket on 127.0.0.1 and an ephemeral port, written to *port. */
static int listen_loopback(int *port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) die("socket");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
  if (listen(s, 4) != 0) die("listen");
  socklen_t len = sizeof a;
  if (getsockname(s, (struct sockaddr *)&a, &len) != 0) die("getsockname");
  *port = ntohs(a.sin_port);
  return s;
}

static int connect_loopback(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) die("socket");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) die("connect");
  return s;
}

static void nodelay(int s) {
  int one = 1;
  if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
}

static int write_all(int s, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(s, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads exactly n bytes; 0 on success, -1 on end of stream or error. */
static int read_all(int s, char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(s, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int stream(double seconds, size_t write_bytes) {
  int port;
  int ls = listen_loopback(&port);
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(ls);
    int s = connect_loopback(port);
    char *buf = malloc(write_bytes);
    memset(buf, 0x5a, write_bytes);
    double deadline = now_s() + seconds;
    for (uint64_t i = 0;; i++) {
      if ((i & 15) == 0 && now_s() >= deadline) break;
      if (write_all(s, buf, write_bytes) != 0) _exit(1);
    }
    close(s);
    _exit(0);
  }
  int s = accept(ls, NULL, NULL);
  if (s < 0) die("accept");
  char *buf = malloc(READ_BYTES);
  uint64_t total = 0, reads = 0;
  double first = 0, last = 0;
  for (;;) {
    ssize_t r = read(s, buf, READ_BYTES);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    last = now_s();
    if (total == 0) first = last;
    total += (uint64_t)r;
    reads++;
  }
  int status = 0;
  waitpid(child, &status, 0);
  double elapsed = last - first;
  printf("{\"test\":\"stream\",\"write_bytes\":%zu,\"bytes\":%llu,\"reads\":%llu,\"seconds\":%.6f,"
         "\"MB_per_s\":%.1f}\n",
         write_bytes, (unsigned long long)total, (unsigned long long)reads, elapsed, total / elapsed / 1e6);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int pingpong(double seconds, size_t message_bytes) {
  int port;
  int ls = listen_loopback(&port);
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(ls);
    int s = connect_loopback(port);
    nodelay(s);
    char *buf = malloc(message_bytes);
    while (read_all(s, buf, message_bytes) == 0) {
      if (write_all(s, buf, message_bytes) != 0) break;
    }
    close(s);
    _exit(0);
  }
  int s = accept(ls, NULL, NULL);
  if (s < 0) die("accept");
  nodelay(s);
  char *buf = malloc(message_bytes);
  memset(buf, 0x5a, message_bytes);
  /* Warm-up: connection, caches, the child's first wake-ups. */
  for (int i = 0; i < 1000; i++) {
    if (write_all(s, buf, message_bytes) != 0 || read_all(s, buf, message_bytes) != 0) die("warm-up");
  }
  double *samples = malloc(sizeof(double) * MAX_SAMPLES);
  uint64_t trips = 0;
  double start = now_s(), end = start, last = start;
  do {
    if (write_all(s, buf, message_bytes) != 0 || read_all(s, buf, message_bytes) != 0) die("round trip");
    end = now_s();
    if (trips < MAX_SAMPLES) samples[trips] = (end - last) * 1e6;
    last = end;
    trips++;
  } while (end - start < seconds);
  close(s);
  int status = 0;
  waitpid(child, &status, 0);
  uint64_t n = trips < MAX_SAMPLES ? trips : MAX_SAMPLES;
  qsort(samples, n, sizeof(double), cmp_double);
  double elapsed = end - start;
  printf("{\"test\":\"pingpong\",\"message_bytes\":%zu,\"round_trips\":%llu,\"seconds\":%.6f,"
         "\"rt_per_s\":%.0f,\"mean_us\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
         message_bytes, (unsigned long long)trips, elapsed, trips / elapsed, elapsed * 1e6 / trips,
         samples[n / 2], samples[(n * 99) / 100]);
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int sink(const char *hex) {
  size_t hex_len = strlen(hex);
  if (hex_len % 2 != 0) {
    fprintf(stderr, "tcp: sink: odd hex length\n");
    return 2;
  }
  size_t greet_bytes = hex_len / 2;
  char *greet = malloc(greet_bytes + 1);
  for (size_t i = 0; i < greet_bytes; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      fprintf(stderr, "tcp: sink: bad hex\n");
      return 2;
    }
    greet[i] = (char)(hi << 4 | lo);
  }
  int port;
  int ls = listen_loopback(&port);
  printf("{\"port\":%d}\n", port);
  fflush(stdout);
  int s = accept(ls, NULL, NULL);
  if (s < 0) die("accept");
  close(ls);
  if (write_all(s, greet, greet_bytes) != 0) die("write handshake");
  char *buf = malloc(READ_BYTES);
  uint64_t total = 0, reads = 0;
  double first = 0, last = 0;
  for (;;) {
    ssize_t r = read(s, buf, READ_BYTES);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break; /* end of stream, or a reset when the sender destroys its socket */
    last = now_s();
    if (total == 0) first = last;
    total += (uint64_t)r;
    reads++;
  }
  double elapsed = last - first;
  printf("{\"test\":\"sink\",\"bytes\":%llu,\"reads\":%llu,\"seconds\":%.6f,\"MB_per_s\":%.1f}\n",
         (unsigned long long)total, (unsigned long long)reads, elapsed,
         elapsed > 0 ? total / elapsed / 1e6 : 0.0);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 4 && strcmp(argv[1], "stream") == 0)
    return stream(strtod(argv[2], NULL), (size_t)strtoull(argv[3], NULL, 10));
  if (argc == 4 && strcmp(argv[1], "pingpong") == 0)
    return pingpong(strtod(argv[2], NULL), (size_t)strtoull(argv[3], NULL, 10));
  if (argc == 3 && strcmp(argv[1], "sink") == 0) return sink(argv[2]);
  fprintf(stderr, "usage: tcp stream <seconds> <write_bytes> | tcp pingpong <seconds> <message_bytes> | tcp sink <hex>\n");
  return 2;
}
