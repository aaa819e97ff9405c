/*
 * CRC32C and the stored entry record in C, on one thread: the physical limit for
 * src/shared/crc32c.ts and src/shared/entry-codec.ts. Built and run by native-bench/native.ts.
 *
 *   cpu <seconds_per_case>
 *
 * Cases (each runs a quarter of its budget as warm-up, then its budget; one JSON line each):
 *   crc-table <n>    byte-at-a-time table loop, the algorithm of crc32cTable in JavaScript
 *   crc-hw <n>       the CPU's CRC32C instruction (SSE4.2 crc32q on x86-64, crc32cx on
 *                    ARMv8), one dependent chain of 8-byte steps; libraries that interleave
 *                    three chains go ~2-3x faster on long buffers, so this is a plain loop,
 *                    not the last word
 *   entry-encode <n> / entry-decode <n>   the stored record of protocol.ts (32-byte header:
 *                    payload length, header CRC, term, index, type, reserved, payload CRC),
 *                    both CRCs computed with crc-hw when the CPU has it; decode checks what
 *                    decodeEntryAt checks (both CRCs, length limit, type, reserved, term, index)
 * Sizes: CRC over 64 B, 4 KiB, 64 KiB buffers; entries with 16 B and 4 KiB payloads.
 *
 * Also prints two check lines that native.ts compares with JavaScript: the CRC of
 * "123456789" (0xe3069283) by each implementation, and one encoded record in hex.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#define HAVE_HW_CODE 1
#elif defined(__aarch64__)
#define HAVE_HW_CODE 1
#else
#define HAVE_HW_CODE 0
#endif

#define POLY 0x82f63b78u
#define MAX_PAYLOAD_BYTES (16u * 1024 * 1024)

static uint32_t table[256];
static int have_hw;
static volatile uint32_t sink;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void make_table(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
    table[n] = c;
  }
}

/* CRC32C of p[0, n) continuing from seed (the CRC of what came before; 0 to start). */
static uint32_t crc_table(uint32_t seed, const uint8_t *p, size_t n) {
  uint32_t c = ~seed;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t seed, const uint8_t *p, size_t n) {
  uint64_t c = (uint32_t)~seed;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = (uint32_t)c;
  for (; n > 0; n--, p++) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}
static int detect_hw(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
__attribute__((target("+crc"))) static uint32_t crc_hw(uint32_t seed, const uint8_t *p, size_t n) {
  uint32_t c = ~seed;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    __asm__("crc32cx %w0, %w0, %x1" : "+r"(c) : "r"(v));
  }
  for (; n > 0; n--, p++) __asm__("crc32cb %w0, %w0, %w1" : "+r"(c) : "r"((uint32_t)*p));
  return ~c;
}
static int detect_hw(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#else
static uint32_t crc_hw(uint32_t seed, const uint8_t *p, size_t n) { return crc_table(seed, p, n); }
static int detect_hw(void) { return 0; }
#endif

/* The CRC the entry codec uses: the instruction when there is one. */
static uint32_t crc_best(uint32_t seed, const uint8_t *p, size_t n) {
  return have_hw ? crc_hw(seed, p, n) : crc_table(seed, p, n);
}

/* ------------------------------------------------------------ the stored entry record */

static inline void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); } /* little-endian hosts */
static inline void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline uint64_t get64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Header CRC: bytes [0, 4) then [8, 32), skipping the header CRC field itself. */
static inline uint32_t header_crc(const uint8_t *r) { return crc_best(crc_best(0, r, 4), r + 8, 24); }

static size_t encode_entry(uint8_t *out, uint64_t index, uint64_t term, uint8_t type, const uint8_t *data,
                           uint32_t n) {
  put32(out + 0, n);
  put64(out + 8, term);
  put64(out + 16, index);
  out[24] = type;
  out[25] = out[26] = out[27] = 0;
  memcpy(out + 32, data, n);
  put32(out + 28, crc_best(0, data, n));
  put32(out + 4, header_crc(out));
  return 32 + (size_t)n;
}

/* Returns the record's length, or 0 if it is not a valid record. */
static size_t decode_entry(const uint8_t *r, size_t available, uint64_t *index) {
  if (available < 32) return 0;
  if (get32(r + 4) != header_crc(r)) return 0;
  uint32_t n = get32(r + 0);
  if (n > MAX_PAYLOAD_BYTES) return 0;
  if (r[24] > 3 || r[25] | r[26] | r[27]) return 0;
  uint64_t term = get64(r + 8), idx = get64(r + 16);
  const uint64_t max_safe = (1ull << 53) - 1;
  if (term < 1 || term > max_safe || idx < 1 || idx > max_safe) return 0;
  if (available < 32 + (size_t)n) return 0;
  if (get32(r + 28) != crc_best(0, r + 32, n)) return 0;
  *index = idx;
  return 32 + (size_t)n;
}

/* ------------------------------------------------------------ cases */

struct views {
  uint8_t *backing;
  size_t size, count;
};

static uint8_t *filled(size_t n, uint32_t seed) {
  uint8_t *out = malloc(n);
  uint32_t x = seed ? seed : 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = (uint8_t)x;
  }
  return out;
}

typedef uint32_t (*crc_fn)(uint32_t, const uint8_t *, size_t);

static crc_fn round_crc;
static struct views round_views;
static uint8_t *enc_out, *enc_payloads;
static size_t enc_count, enc_payload_bytes, enc_total_bytes;

static uint32_t crc_round(void) {
  uint32_t x = 0;
  for (size_t i = 0; i < round_views.count; i++)
    x ^= round_crc(0, round_views.backing + i * round_views.size, round_views.size);
  return x;
}

static uint32_t encode_round(void) {
  size_t pos = 0;
  for (size_t i = 0; i < enc_count; i++)
    pos += encode_entry(enc_out + pos, 1000000 + i, 7, 0, enc_payloads + i * enc_payload_bytes,
                        (uint32_t)enc_payload_bytes);
  return (uint32_t)pos;
}

static uint32_t decode_round(void) {
  size_t pos = 0;
  uint32_t x = 0;
  while (pos < enc_total_bytes) {
    uint64_t index = 0;
    size_t n = decode_entry(enc_out + pos, enc_total_bytes - pos, &index);
    if (n == 0) {
      fprintf(stderr, "cpu: decode failed at %zu\n", pos);
      exit(1);
    }
    x ^= (uint32_t)index;
    pos += n;
  }
  return x;
}

/* Runs round() for budget seconds after a warm-up and prints the rates. */
static void measure(const char *name, size_t size, double ops_per_round, double bytes_per_round, double budget,
                    uint32_t (*round)(void)) {
  for (int pass = 0; pass < 2; pass++) {
    double limit = pass == 0 ? budget / 4 : budget;
    uint64_t rounds = 0;
    double start = now_s(), elapsed;
    do {
      sink ^= round();
      rounds++;
      elapsed = now_s() - start;
    } while (elapsed < limit);
    if (pass == 1) {
      double ops = rounds * ops_per_round;
      printf("{\"case\":\"%s\",\"size_bytes\":%zu,\"ops_per_s\":%.1f,\"MB_per_s\":%.2f,\"ns_per_op\":%.2f}\n", name,
             size, ops / elapsed, rounds * bytes_per_round / elapsed / 1e6, elapsed * 1e9 / ops);
      fflush(stdout);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: cpu <seconds_per_case>\n");
    return 2;
  }
  double budget = strtod(argv[1], NULL);
  if (!(budget > 0)) return 2;
  make_table();
  have_hw = HAVE_HW_CODE && detect_hw();

  const uint8_t check[] = "123456789";
  char hw_check[16] = "null";
  if (have_hw) snprintf(hw_check, sizeof hw_check, "\"%08x\"", crc_hw(0, check, 9));
  printf("{\"check\":\"crc\",\"table\":\"%08x\",\"hw\":%s}\n", crc_table(0, check, 9), hw_check);
  uint8_t sample_payload[16], sample[48];
  for (int i = 0; i < 16; i++) sample_payload[i] = (uint8_t)i;
  encode_entry(sample, 1000000, 7, 0, sample_payload, 16);
  printf("{\"check\":\"entry\",\"hex\":\"");
  for (int i = 0; i < 48; i++) printf("%02x", sample[i]);
  printf("\"}\n");
  fflush(stdout);

  const size_t sizes[] = {64, 4096, 65536};
  for (size_t k = 0; k < 3; k++) {
    size_t size = sizes[k];
    /* Many distinct buffers over ~4 MiB, so small sizes are not served from one cache line. */
    size_t count = (4u << 20) / size;
    if (count < 64) count = 64;
    round_views.backing = filled(size * count, 1);
    round_views.size = size;
    round_views.count = count;
    round_crc = crc_table;
    measure("crc-table", size, (double)count, (double)(size * count), budget, crc_round);
    if (have_hw) {
      round_crc = crc_hw;
      measure("crc-hw", size, (double)count, (double)(size * count), budget, crc_round);
    }
    free(round_views.backing);
  }

  const size_t payloads[] = {16, 4096};
  for (size_t k = 0; k < 2; k++) {
    enc_payload_bytes = payloads[k];
    enc_count = enc_payload_bytes <= 16 ? 4096 : 256;
    enc_total_bytes = enc_count * (32 + enc_payload_bytes);
    enc_payloads = filled(enc_count * enc_payload_bytes, 7);
    enc_out = malloc(enc_total_bytes);
    measure("entry-encode", enc_payload_bytes, (double)enc_count, (double)enc_total_bytes, budget, encode_round);
    measure("entry-decode", enc_payload_bytes, (double)enc_count, (double)enc_total_bytes, budget, decode_round);
    free(enc_out);
    free(enc_payloads);
  }
  return 0;
}
