/* A job is published by bumping `generation`; workers claim its tasks from an atomic counter,
 * the caller works too and then waits until every worker has checked out of the job.
 *
 * Between jobs a worker first spins on `generation` for about SPIN_NS, then sleeps on a
 * condition variable; the caller waits for the workers the same way. A decode step is a few
 * hundred short jobs with microseconds of serial work between them, and waking a sleeping
 * thread through the kernel costs tens of microseconds on a virtual machine: sleeping after
 * every job cost 4-7 % of decode speed (medians of 4 A B pairs) and made some rounds collapse
 * when the host was busy. Spinning only briefly keeps an idle server's threads asleep.
 *
 * Sleeping is race-free by the Dekker pattern: a sleeper announces itself (sleepers,
 * caller_waiting) before its last look at the condition, and a publisher changes the condition
 * before it looks for sleepers, all sequentially consistent, so one of the two sees the other;
 * the wake-up is sent under the mutex the sleeper holds until it waits. */
#include "base/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SPIN_NS 200000 /* 0.2 ms */

struct ds_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_ulong generation; /* bumped for every job */
    atomic_int busy;         /* workers still inside the current job */
    atomic_int sleepers;     /* workers asleep on `wake`, or about to be */
    atomic_int caller_waiting;
    atomic_int quit;
    /* the current job, written before `generation` is bumped */
    ds_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next_task;
};

typedef struct worker_arg {
    ds_pool *pool;
    int index;
} worker_arg;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Spins until done(p, arg) holds or SPIN_NS pass; returns whether it holds. */
static int spin_until(int (*done)(ds_pool *, unsigned long), ds_pool *p, unsigned long arg) {
    const long long end = now_ns() + SPIN_NS;
    for (int i = 0;; i++) {
        if (done(p, arg)) return 1;
        cpu_relax();
        if ((i & 63) == 63 && now_ns() > end) return done(p, arg);
    }
}

static int job_published(ds_pool *p, unsigned long seen) {
    return atomic_load(&p->quit) || atomic_load(&p->generation) != seen;
}

static int workers_done(ds_pool *p, unsigned long unused) {
    (void)unused;
    return atomic_load(&p->busy) == 0;
}

static void run_tasks(ds_pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    ds_pool *p = wa.pool;
    unsigned long seen = 0;
    for (;;) {
        if (!spin_until(job_published, p, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (!job_published(p, seen)) pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load(&p->generation);
        run_tasks(p, wa.index);
        if (atomic_fetch_sub(&p->busy, 1) == 1 && atomic_load(&p->caller_waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Wakes the workers asleep on `wake` (after the condition they wait for has changed). */
static void wake_sleepers(ds_pool *p) {
    if (atomic_load(&p->sleepers) == 0) return;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

ds_pool *ds_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    ds_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){.pool = p, .index = i};
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = i; /* run with the workers we got */
            break;
        }
    }
    return p;
}

int ds_pool_size(const ds_pool *p) { return p->n_threads; }

void ds_pool_run(ds_pool *p, int n_tasks, ds_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->busy, p->n_threads - 1);
    atomic_fetch_add(&p->generation, 1);
    wake_sleepers(p);
    run_tasks(p, 0);
    if (!spin_until(workers_done, p, 0)) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_waiting, 1);
        while (!workers_done(p, 0)) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_waiting, 0);
        pthread_mutex_unlock(&p->mu);
    }
}

void ds_pool_destroy(ds_pool *p) {
    if (!p) return;
    atomic_store(&p->quit, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int ds_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
