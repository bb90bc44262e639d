/*
 * Byte kernels of the fastws compiled core: XOR masking and strict UTF-8
 * validation, each with a portable version and an AVX2 version chosen at run
 * time from what the CPU reports.
 *
 * Distributable builds never pass -march=native or -mavx2: the AVX2 functions
 * carry a per-function target attribute, and are only called after
 * __builtin_cpu_supports("avx2") said yes, so one wheel runs on every x86-64
 * CPU. Other compilers and CPUs get the portable code, which works on 64-bit
 * words and which compilers vectorise with the baseline instruction set
 * (SSE2 on x86-64, NEON on arm64).
 *
 * The UTF-8 validator is the "lookup" algorithm of Keiser and Lemire,
 * "Validating UTF-8 In Less Than One Instruction Per Byte" (2021): three table
 * lookups on nibbles of each byte and its predecessor classify every error in
 * a 32-byte block at once.
 */
#ifndef FASTWS_SIMD_H
#define FASTWS_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FASTWS_HAVE_AVX2 1
#include <immintrin.h>
#define FASTWS_AVX2 __attribute__((target("avx2")))
#else
#define FASTWS_HAVE_AVX2 0
#endif

enum { FASTWS_SIMD_GENERIC = 0, FASTWS_SIMD_AVX2 = 1 };

/* ---------------------------------------------------------------- masking */

/* dst[i] = src[i] ^ key[i % 4] for i < n. src and dst may be the same. */
static void fastws_mask_generic(const uint8_t *src, uint8_t *dst, size_t n,
                                const uint8_t key[4])
{
    uint32_t k32;
    uint64_t k64, v;
    size_t i = 0;
    memcpy(&k32, key, 4);
    k64 = ((uint64_t)k32 << 32) | k32;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, src + i, 8);
        v ^= k64;
        memcpy(dst + i, &v, 8);
    }
    /* At most 7 bytes are left: one 4-byte word, then up to 3 bytes. */
    if (i + 4 <= n) {
        uint32_t w;
        memcpy(&w, src + i, 4);
        w ^= k32;
        memcpy(dst + i, &w, 4);
        i += 4;
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

#if FASTWS_HAVE_AVX2
FASTWS_AVX2 static void fastws_mask_avx2(const uint8_t *src, uint8_t *dst,
                                         size_t n, const uint8_t key[4])
{
    uint32_t k32;
    size_t i = 0;
    __m256i k;
    memcpy(&k32, key, 4);
    k = _mm256_set1_epi32((int)k32);
    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
    }
    if (i + 16 <= n) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, _mm256_castsi256_si128(k)));
        i += 16;
    }
    /* i is a multiple of 4 here, so the key phase is unchanged. */
    fastws_mask_generic(src + i, dst + i, n - i, key);
}
#endif

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the sequence a lead byte starts, 0 for bytes that never lead. */
static inline int fastws_utf8_seqlen(uint8_t lead)
{
    if (lead < 0x80) return 1;
    if (lead < 0xC2) return 0;
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    if (lead < 0xF5) return 4;
    return 0;
}

/* Is b allowed at position pos (1..3) of the sequence that lead starts?
 * The second byte's range excludes overlongs (E0, F0), surrogates (ED) and
 * code points above U+10FFFF (F4) (RFC 3629 section 4). */
static inline int fastws_utf8_cont_ok(uint8_t lead, int pos, uint8_t b)
{
    if (pos == 1) {
        switch (lead) {
        case 0xE0: return b >= 0xA0 && b <= 0xBF;
        case 0xED: return b >= 0x80 && b <= 0x9F;
        case 0xF0: return b >= 0x90 && b <= 0xBF;
        case 0xF4: return b >= 0x80 && b <= 0x8F;
        default: break;
        }
    }
    return (b & 0xC0) == 0x80;
}

/* Portable validator: 8 ASCII bytes at a time, one sequence at a time else.
 * Returns 1 if s[0:n] is valid UTF-8, 0 otherwise. */
static int fastws_utf8_generic(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t lead = s[i];
        int len, k;
        if (lead < 0x80) {
            uint64_t v;
            i++;
            while (i + 8 <= n) {
                memcpy(&v, s + i, 8);
                if (v & UINT64_C(0x8080808080808080)) break;
                i += 8;
            }
            continue;
        }
        len = fastws_utf8_seqlen(lead);
        if (len == 0 || (size_t)len > n - i) return 0;
        for (k = 1; k < len; k++)
            if (!fastws_utf8_cont_ok(lead, k, s[i + k])) return 0;
        i += (size_t)len;
    }
    return 1;
}

#if FASTWS_HAVE_AVX2
/* Error classes, one bit each, as in Keiser & Lemire's lookup tables. */
#define FW_TOO_SHORT (1 << 0)  /* lead byte not followed by a continuation */
#define FW_TOO_LONG (1 << 1)   /* continuation after ASCII */
#define FW_OVERLONG_3 (1 << 2) /* E0 80..9F */
#define FW_TOO_LARGE (1 << 3)  /* F4 90..BF, F5..FF */
#define FW_SURROGATE (1 << 4)  /* ED A0..BF */
#define FW_OVERLONG_2 (1 << 5) /* C0, C1 */
#define FW_TOO_LARGE_1000 (1 << 6)
#define FW_OVERLONG_4 (1 << 6) /* F0 80..8F */
#define FW_TWO_CONTS (1 << 7)  /* two continuations: legal only in 3-4 byte sequences */
#define FW_CARRY (FW_TOO_SHORT | FW_TOO_LONG | FW_TWO_CONTS)

/* The last N bytes of prev followed by the first 32-N bytes of in. */
#define FW_PREV(in, prev, N) \
    _mm256_alignr_epi8((in), _mm256_permute2x128_si256((prev), (in), 0x21), 16 - (N))

FASTWS_AVX2 static inline __m256i fw_hi_nibbles(__m256i v)
{
    return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}

FASTWS_AVX2 static inline __m256i fw_block_errors(__m256i in, __m256i prev)
{
    const __m256i byte_1_high_table = _mm256_setr_epi8(
        FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG,
        FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG,
        FW_TWO_CONTS, FW_TWO_CONTS, FW_TWO_CONTS, FW_TWO_CONTS,
        FW_TOO_SHORT | FW_OVERLONG_2,
        FW_TOO_SHORT,
        FW_TOO_SHORT | FW_OVERLONG_3 | FW_SURROGATE,
        FW_TOO_SHORT | FW_TOO_LARGE | FW_TOO_LARGE_1000 | FW_OVERLONG_4,
        FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG,
        FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG, FW_TOO_LONG,
        FW_TWO_CONTS, FW_TWO_CONTS, FW_TWO_CONTS, FW_TWO_CONTS,
        FW_TOO_SHORT | FW_OVERLONG_2,
        FW_TOO_SHORT,
        FW_TOO_SHORT | FW_OVERLONG_3 | FW_SURROGATE,
        FW_TOO_SHORT | FW_TOO_LARGE | FW_TOO_LARGE_1000 | FW_OVERLONG_4);
#define FW_L (FW_CARRY | FW_TOO_LARGE | FW_TOO_LARGE_1000)
    const __m256i byte_1_low_table = _mm256_setr_epi8(
        FW_CARRY | FW_OVERLONG_3 | FW_OVERLONG_2 | FW_OVERLONG_4,
        FW_CARRY | FW_OVERLONG_2,
        FW_CARRY, FW_CARRY,
        FW_CARRY | FW_TOO_LARGE,
        FW_L, FW_L, FW_L, FW_L, FW_L, FW_L, FW_L, FW_L,
        FW_L | FW_SURROGATE,
        FW_L, FW_L,
        FW_CARRY | FW_OVERLONG_3 | FW_OVERLONG_2 | FW_OVERLONG_4,
        FW_CARRY | FW_OVERLONG_2,
        FW_CARRY, FW_CARRY,
        FW_CARRY | FW_TOO_LARGE,
        FW_L, FW_L, FW_L, FW_L, FW_L, FW_L, FW_L, FW_L,
        FW_L | FW_SURROGATE,
        FW_L, FW_L);
#undef FW_L
#define FW_C8 (FW_TOO_LONG | FW_OVERLONG_2 | FW_TWO_CONTS | FW_OVERLONG_3 | FW_TOO_LARGE_1000 | FW_OVERLONG_4)
#define FW_C9 (FW_TOO_LONG | FW_OVERLONG_2 | FW_TWO_CONTS | FW_OVERLONG_3 | FW_TOO_LARGE)
#define FW_CA (FW_TOO_LONG | FW_OVERLONG_2 | FW_TWO_CONTS | FW_SURROGATE | FW_TOO_LARGE)
    const __m256i byte_2_high_table = _mm256_setr_epi8(
        FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT,
        FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT,
        FW_C8, FW_C9, FW_CA, FW_CA,
        FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT,
        FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT,
        FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT,
        FW_C8, FW_C9, FW_CA, FW_CA,
        FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT, FW_TOO_SHORT);
#undef FW_C8
#undef FW_C9
#undef FW_CA
    __m256i prev1 = FW_PREV(in, prev, 1);
    __m256i special = _mm256_and_si256(
        _mm256_and_si256(
            _mm256_shuffle_epi8(byte_1_high_table, fw_hi_nibbles(prev1)),
            _mm256_shuffle_epi8(byte_1_low_table,
                                _mm256_and_si256(prev1, _mm256_set1_epi8(0x0F)))),
        _mm256_shuffle_epi8(byte_2_high_table, fw_hi_nibbles(in)));
    /* Third and fourth bytes of 3- and 4-byte sequences must be
     * continuations, and only they may follow a continuation. */
    __m256i prev2 = FW_PREV(in, prev, 2);
    __m256i prev3 = FW_PREV(in, prev, 3);
    __m256i is_third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 0x80)));
    __m256i is_fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 0x80)));
    __m256i must23 = _mm256_and_si256(_mm256_or_si256(is_third, is_fourth),
                                      _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23, special);
}

/* Non-zero where the block ends inside a sequence that needs more bytes. */
FASTWS_AVX2 static inline __m256i fw_incomplete(__m256i in)
{
    const __m256i max_value = _mm256_setr_epi8(
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        (char)(0xF0 - 1), (char)(0xE0 - 1), (char)(0xC0 - 1));
    return _mm256_subs_epu8(in, max_value);
}

FASTWS_AVX2 static int fastws_utf8_avx2(const uint8_t *s, size_t n)
{
    __m256i error = _mm256_setzero_si256();
    __m256i prev = _mm256_setzero_si256();
    __m256i prev_incomplete = _mm256_setzero_si256();
    size_t i = 0;
    uint8_t tail[32];

    while (i + 128 <= n) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(s + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(s + i + 96));
        __m256i any = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
        if (_mm256_movemask_epi8(any) == 0) {
            /* All ASCII: only a sequence left open before it can be wrong. */
            error = _mm256_or_si256(error, prev_incomplete);
            prev_incomplete = _mm256_setzero_si256();
        } else {
            error = _mm256_or_si256(error, fw_block_errors(a, prev));
            error = _mm256_or_si256(error, fw_block_errors(b, a));
            error = _mm256_or_si256(error, fw_block_errors(c, b));
            error = _mm256_or_si256(error, fw_block_errors(d, c));
            prev_incomplete = fw_incomplete(d);
        }
        prev = d;
        i += 128;
        if (!_mm256_testz_si256(error, error)) return 0; /* fail early */
    }
    while (i + 32 <= n) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        if (_mm256_movemask_epi8(a) == 0) {
            error = _mm256_or_si256(error, prev_incomplete);
            prev_incomplete = _mm256_setzero_si256();
        } else {
            error = _mm256_or_si256(error, fw_block_errors(a, prev));
            prev_incomplete = fw_incomplete(a);
        }
        prev = a;
        i += 32;
    }
    if (i < n) {
        /* Zero padding reads as ASCII, so a sequence cut by the real end is
         * caught as "too short". */
        __m256i a;
        memset(tail, 0, sizeof tail);
        memcpy(tail, s + i, n - i);
        a = _mm256_loadu_si256((const __m256i *)tail);
        error = _mm256_or_si256(error, fw_block_errors(a, prev));
        prev_incomplete = fw_incomplete(a);
    }
    error = _mm256_or_si256(error, prev_incomplete);
    return _mm256_testz_si256(error, error);
}
#undef FW_PREV
#endif

/* --------------------------------------------------------------- dispatch */

typedef void (*fastws_mask_fn)(const uint8_t *, uint8_t *, size_t, const uint8_t *);
typedef int (*fastws_utf8_fn)(const uint8_t *, size_t);

static fastws_mask_fn fastws_mask_impl = fastws_mask_generic;
static fastws_utf8_fn fastws_utf8_impl = fastws_utf8_generic;
static int fastws_simd = FASTWS_SIMD_GENERIC;

/* The best level this CPU supports. */
static int fastws_cpu_simd(void)
{
#if FASTWS_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return FASTWS_SIMD_AVX2;
#endif
    return FASTWS_SIMD_GENERIC;
}

/* Select the kernels for level; returns 0, or -1 if the CPU cannot run it. */
static int fastws_set_simd(int level)
{
    if (level == FASTWS_SIMD_GENERIC) {
        fastws_mask_impl = fastws_mask_generic;
        fastws_utf8_impl = fastws_utf8_generic;
        fastws_simd = level;
        return 0;
    }
#if FASTWS_HAVE_AVX2
    if (level == FASTWS_SIMD_AVX2 && fastws_cpu_simd() == FASTWS_SIMD_AVX2) {
        fastws_mask_impl = fastws_mask_avx2;
        fastws_utf8_impl = fastws_utf8_avx2;
        fastws_simd = level;
        return 0;
    }
#endif
    return -1;
}

/* Small inputs skip the indirect call: below 128 bytes (one iteration of the
 * AVX2 loop) the inlined word loop is about 1 ns faster a call than the call
 * into the AVX2 function, measured at 40 to 125 bytes. */
static inline void fastws_mask(const uint8_t *src, uint8_t *dst, size_t n,
                               const uint8_t key[4])
{
    if (n < 128)
        fastws_mask_generic(src, dst, n, key);
    else
        fastws_mask_impl(src, dst, n, key);
}

static inline int fastws_utf8_valid(const uint8_t *s, size_t n)
{
    if (n < 32) return fastws_utf8_generic(s, n);
    return fastws_utf8_impl(s, n);
}

#endif /* FASTWS_SIMD_H */
