/*
 * fdatasync rate after appends of a fixed size: the disk's physical limit for group commit.
 * Built and run by native-bench/native.ts; plain C11 + POSIX, nothing downloaded.
 *
 *   fsync <dir> <prealloc|grow> <bytes> <seconds> [<prealloc_bytes>]
 *
 * prealloc: the file (<prealloc_bytes>, default 64 MiB as a segment, at least 64 appends)
 *   is first filled with written zeroes (as SegmentLog preallocates a
 *   segment: written blocks, not fallocate's unwritten extents), synced, then overwritten
 *   front to back, pwrite + fdatasync per append, wrapping to offset 0 at its end. No
 *   block allocation and no size change, so fdatasync flushes data only.
 * grow: a new empty file, each append past the end of file, so every fdatasync also
 *   commits a new size and new blocks through the journal. At 256 MiB it is cut back to
 *   zero (ftruncate, inside the timed loop: rare) so a fast disk does not fill up.
 *
 * Prints one JSON line: appends (= fdatasync calls), seconds, syncs/s, MB/s (10^6 bytes),
 * and the p50/p99 of one pwrite + fdatasync in microseconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1u << 22)
#define GROW_LIMIT_BYTES (256ull << 20)

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "fsync: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void write_all(int fd, const char *buf, size_t n, off_t at) {
  while (n > 0) {
    ssize_t w = pwrite(fd, buf, n, at);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("pwrite");
    }
    buf += w;
    n -= (size_t)w;
    at += w;
  }
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: fsync <dir> <prealloc|grow> <bytes> <seconds> [<prealloc_bytes>]\n");
    return 2;
  }
  const char *dir = argv[1];
  int grow = strcmp(argv[2], "grow") == 0;
  if (!grow && strcmp(argv[2], "prealloc") != 0) {
    fprintf(stderr, "fsync: mode must be prealloc or grow\n");
    return 2;
  }
  size_t bytes = (size_t)strtoull(argv[3], NULL, 10);
  double seconds = strtod(argv[4], NULL);
  if (bytes == 0 || !(seconds > 0)) {
    fprintf(stderr, "fsync: bytes and seconds must be positive\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/fsync-%s-%zu-%d.dat", dir, argv[2], bytes, (int)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) die(path);
  char *buf = malloc(bytes);
  if (buf == NULL) die("malloc");

  /* Preallocated size: 64 MiB (a segment) unless given, and at least 64 appends. */
  off_t file_bytes = 0;
  if (!grow) {
    file_bytes = argc == 6 ? (off_t)strtoull(argv[5], NULL, 10) : (off_t)(64ull << 20);
    if ((off_t)bytes * 64 > file_bytes) file_bytes = (off_t)bytes * 64;
    file_bytes -= file_bytes % (off_t)bytes;
    size_t chunk = 1 << 20;
    char *zero = calloc(1, chunk);
    if (zero == NULL) die("calloc");
    for (off_t at = 0; at < file_bytes; at += (off_t)chunk) {
      size_t n = (size_t)(file_bytes - at) < chunk ? (size_t)(file_bytes - at) : chunk;
      write_all(fd, zero, n, at);
    }
    free(zero);
    if (fsync(fd) != 0) die("fsync");
  }
  memset(buf, 0x5a, bytes);

  double *samples = malloc(sizeof(double) * MAX_SAMPLES);
  if (samples == NULL) die("malloc");
  uint64_t appends = 0;
  off_t at = 0;
  double start = now_s(), end = start, last = start;
  do {
    if (grow && (uint64_t)at >= GROW_LIMIT_BYTES) {
      if (ftruncate(fd, 0) != 0) die("ftruncate");
      at = 0;
    } else if (!grow && at >= file_bytes) {
      at = 0;
    }
    write_all(fd, buf, bytes, at);
    if (fdatasync(fd) != 0) die("fdatasync");
    at += (off_t)bytes;
    end = now_s();
    if (appends < MAX_SAMPLES) samples[appends] = (end - last) * 1e6;
    last = end;
    appends++;
  } while (end - start < seconds);

  uint64_t n = appends < MAX_SAMPLES ? appends : MAX_SAMPLES;
  qsort(samples, n, sizeof(double), cmp_double);
  double elapsed = end - start;
  printf("{\"mode\":\"%s\",\"bytes\":%zu,\"appends\":%llu,\"seconds\":%.6f,\"syncs_per_s\":%.1f,"
         "\"MB_per_s\":%.3f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
         argv[2], bytes, (unsigned long long)appends, elapsed, appends / elapsed,
         appends * (double)bytes / elapsed / 1e6, samples[n / 2], samples[(n * 99) / 100]);
  close(fd);
  unlink(path);
  free(samples);
  free(buf);
  return 0;
}
