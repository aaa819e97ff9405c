/*
 * A single-producer/single-consumer byte ring between two pthreads, C11 atomics: the
 * physical limit for src/shared/ring.ts, built the same way so the ratio measures the
 * language and runtime, not a different design. Built and run by native-bench/native.ts.
 *
 *   ring <message_bytes> <seconds> <batch_frames> <capacity_bytes>
 *
 * Same framing as ring.ts: a record is [ length: u32 | payload | pad to 4 ], 4-aligned,
 * in a power-of-two data area; the payload may run off the end and continue at offset 0.
 * Positions are free-running u32 byte counters (used = tail - head), each on its own
 * 128-byte line. The producer copies each payload in (its first 4 bytes are a sequence
 * number), publishes the tail every <batch_frames> frames (and whenever it is short of
 * room); the consumer reads everything published, checks each sequence number in place,
 * and releases the head once per drain, as ring-bench.ts does with `--read raw`.
 *
 * Where ring.ts sleeps in Atomics.wait, this one spins briefly and then sched_yield()s:
 * the limit, not a policy for a shared machine.
 *
 * Prints one JSON line: frames, seconds (the consumer's), msgs/s, MB/s of payload
 * (10^6 bytes), sequence errors.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE 128

struct ring {
  _Alignas(LINE) _Atomic uint32_t tail; /* published write position: producer */
  _Alignas(LINE) _Atomic uint32_t head; /* released read position: consumer */
  _Alignas(LINE) _Atomic int closed;    /* producer: no more frames */
  _Alignas(LINE) _Atomic int go;
  _Alignas(LINE) uint32_t capacity;
  uint32_t mask;
  uint8_t *data;
};

static struct ring R;
static size_t msg_bytes;
static double seconds;
static unsigned batch_frames;

/* Consumer's report. */
static uint64_t frames_read, seq_errors;
static double consumer_seconds;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

/* Spin a little, then give the CPU away: two busy threads on a 2-vCPU VM shared with others. */
static inline void backoff(unsigned *spins) {
  if (*spins < 64)
    cpu_relax();
  else
    sched_yield();
  (*spins)++;
}

static inline uint32_t align4(uint32_t n) { return (n + 3u) & ~3u; }

static void *producer(void *arg) {
  (void)arg;
  uint8_t *payload = malloc(msg_bytes);
  memset(payload, 0x5a, msg_bytes);
  while (!atomic_load_explicit(&R.go, memory_order_acquire)) sched_yield();
  const uint32_t need = align4(4u + (uint32_t)msg_bytes);
  uint32_t tail = 0, head_cache = 0, seq = 0;
  unsigned in_batch = 0;
  double deadline = now_s() + seconds;
  for (;;) {
    if ((seq & 1023u) == 0 && now_s() >= deadline) break;
    if (tail - head_cache + need > R.capacity) {
      head_cache = atomic_load_explicit(&R.head, memory_order_acquire);
      if (tail - head_cache + need > R.capacity) {
        /* Full: make what is written visible, then wait for room. */
        atomic_store_explicit(&R.tail, tail, memory_order_release);
        in_batch = 0;
        unsigned spins = 0;
        while (tail - (head_cache = atomic_load_explicit(&R.head, memory_order_acquire)) + need > R.capacity)
          backoff(&spins);
      }
    }
    uint32_t off = tail & R.mask;
    memcpy(R.data + off, &(uint32_t){(uint32_t)msg_bytes}, 4);
    uint32_t at = (off + 4u) & R.mask;
    uint32_t first = R.capacity - at;
    if (first >= msg_bytes) {
      memcpy(R.data + at, payload, msg_bytes);
    } else {
      memcpy(R.data + at, payload, first);
      memcpy(R.data, payload + first, msg_bytes - first);
    }
    /* The payload starts 4-aligned, so its first 4 bytes never straddle the end. */
    memcpy(R.data + at, &seq, 4);
    tail += need;
    seq++;
    if (++in_batch >= batch_frames) {
      atomic_store_explicit(&R.tail, tail, memory_order_release);
      in_batch = 0;
    }
  }
  atomic_store_explicit(&R.tail, tail, memory_order_release);
  atomic_store_explicit(&R.closed, 1, memory_order_release);
  free(payload);
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&R.go, memory_order_acquire)) sched_yield();
  double start = now_s();
  uint32_t head = 0, expected = 0;
  uint64_t frames = 0, errors = 0;
  unsigned spins = 0;
  for (;;) {
    uint32_t tail = atomic_load_explicit(&R.tail, memory_order_acquire);
    if (tail == head) {
      if (atomic_load_explicit(&R.closed, memory_order_acquire)) {
        /* Frames published with the close. */
        if (atomic_load_explicit(&R.tail, memory_order_acquire) == head) break;
        continue;
      }
      backoff(&spins);
      continue;
    }
    spins = 0;
    while (head != tail) {
      uint32_t off = head & R.mask;
      uint32_t len, seq;
      memcpy(&len, R.data + off, 4);
      memcpy(&seq, R.data + ((off + 4u) & R.mask), 4);
      if (seq != expected) errors++;
      expected++;
      frames++;
      head += align4(4u + len);
    }
    atomic_store_explicit(&R.head, head, memory_order_release);
  }
  consumer_seconds = now_s() - start;
  frames_read = frames;
  seq_errors = errors;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: ring <message_bytes> <seconds> <batch_frames> <capacity_bytes>\n");
    return 2;
  }
  msg_bytes = (size_t)strtoull(argv[1], NULL, 10);
  seconds = strtod(argv[2], NULL);
  batch_frames = (unsigned)strtoul(argv[3], NULL, 10);
  uint32_t capacity = (uint32_t)strtoul(argv[4], NULL, 10);
  if (msg_bytes < 4 || !(seconds > 0) || batch_frames < 1 || capacity < 64 || (capacity & (capacity - 1)) != 0 ||
      align4(4u + (uint32_t)msg_bytes) > capacity) {
    fprintf(stderr, "ring: need message_bytes >= 4 that fit, seconds > 0, batch >= 1, capacity a power of two\n");
    return 2;
  }
  R.capacity = capacity;
  R.mask = capacity - 1;
  if (posix_memalign((void **)&R.data, 4096, capacity) != 0) return 1;
  memset(R.data, 0, capacity);
  pthread_t p, c;
  pthread_create(&c, NULL, consumer, NULL);
  pthread_create(&p, NULL, producer, NULL);
  atomic_store_explicit(&R.go, 1, memory_order_release);
  pthread_join(p, NULL);
  pthread_join(c, NULL);
  printf("{\"size_bytes\":%zu,\"batch_frames\":%u,\"capacity_bytes\":%u,\"frames\":%llu,\"seconds\":%.6f,"
         "\"msgs_per_s\":%.0f,\"MB_per_s\":%.1f,\"errors\":%llu}\n",
         msg_bytes, batch_frames, capacity, (unsigned long long)frames_read, consumer_seconds,
         frames_read / consumer_seconds, frames_read * (double)msg_bytes / consumer_seconds / 1e6,
         (unsigned long long)seq_errors);
  free(R.data);
  return seq_errors == 0 ? 0 : 1;
}
