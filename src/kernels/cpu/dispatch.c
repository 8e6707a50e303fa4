/* Chooses the kernel variant and the activation mode once per process. */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/variants.h"

static int g_level = -1;
static int g_act_mode = -1;

/* XCR0: which register states the OS saves on a context switch. */
static unsigned xcr0(void) {
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

/* AVX2 + FMA + F16C, and the OS saving YMM state (read from cpuid/xgetbv directly: clang's
 * __builtin_cpu_supports does not know "f16c"). */
static int has_avx2_fma_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(fma && osxsave && avx && f16c)) return 0;
    if ((xcr0() & 6) != 6) return 0; /* XMM and YMM state enabled */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1;
}

/* AVX-512 F, BW, VL and VNNI on top of AVX2, with the OS saving opmask and ZMM state. */
static int has_avx512_vnni(void) {
    if (!has_avx2_fma_f16c()) return 0;
    if ((xcr0() & 0xe6) != 0xe6) return 0; /* XMM, YMM, opmask, ZMM0-15 high halves, ZMM16-31 */
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    return f && bw && vl && vnni;
}

static int cpu_has(ds_cpu_level l) {
    switch (l) {
    case DS_CPU_SCALAR: return 1;
    case DS_CPU_AVX2: return has_avx2_fma_f16c();
    case DS_CPU_AVX512: return has_avx512_vnni();
    }
    return 0;
}

static ds_cpu_level best_level(void) {
    return cpu_has(DS_CPU_AVX512) ? DS_CPU_AVX512 : cpu_has(DS_CPU_AVX2) ? DS_CPU_AVX2 : DS_CPU_SCALAR;
}

ds_cpu_level ds_cpu_level_get(void) {
    if (g_level >= 0) return (ds_cpu_level)g_level;
    ds_cpu_level l = best_level();
    const char *env = getenv("DSINFER_CPU");
    if (env && *env) {
        if (!strcmp(env, "scalar")) l = DS_CPU_SCALAR;
        else if (!strcmp(env, "avx2") && cpu_has(DS_CPU_AVX2)) l = DS_CPU_AVX2;
        else if (!strcmp(env, "avx512") && cpu_has(DS_CPU_AVX512)) l = DS_CPU_AVX512;
        else
            fprintf(stderr, "dsinfer: DSINFER_CPU=%s is unknown or unsupported on this CPU; using %s\n",
                    env, ds_cpu_level_name(l));
    }
    g_level = (int)l;
    return l;
}

int ds_cpu_level_set(ds_cpu_level l) {
    if (!cpu_has(l)) return -1;
    g_level = (int)l;
    return 0;
}

const char *ds_cpu_level_name(ds_cpu_level l) {
    switch (l) {
    case DS_CPU_AVX2: return "avx2";
    case DS_CPU_AVX512: return "avx512";
    default: return "scalar";
    }
}

ds_act_mode ds_act_mode_get(void) {
    if (g_act_mode >= 0) return (ds_act_mode)g_act_mode;
    ds_act_mode m = DS_ACT_QUANTIZED;
    const char *env = getenv("DSINFER_ACT");
    if (env && *env) {
        if (!strcmp(env, "f32")) m = DS_ACT_EXACT;
        else if (strcmp(env, "q8"))
            fprintf(stderr, "dsinfer: DSINFER_ACT=%s is unknown (f32 or q8); using q8\n", env);
    }
    g_act_mode = (int)m;
    return m;
}

void ds_act_mode_set(ds_act_mode m) { g_act_mode = (int)m; }
