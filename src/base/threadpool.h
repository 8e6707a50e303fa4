/* A persistent pool of worker threads. ds_pool_run() hands out task indices 0..n_tasks-1
 * dynamically and returns when all are done. Which thread runs which task varies from run to
 * run, so task functions must produce results that depend only on the task index (that is
 * what keeps the forward pass thread-invariant); `thread` is only for picking scratch space. */
#ifndef DS_BASE_THREADPOOL_H
#define DS_BASE_THREADPOOL_H

typedef struct ds_pool ds_pool;

typedef void (*ds_task_fn)(void *ctx, int task, int thread);

/* Starts n_threads - 1 workers (the caller is thread 0). NULL on allocation failure. */
ds_pool *ds_pool_create(int n_threads);

/* Number of threads including the caller. */
int ds_pool_size(const ds_pool *p);

/* Runs fn(ctx, task, thread) for every task in [0, n_tasks); blocks until all finish. */
void ds_pool_run(ds_pool *p, int n_tasks, ds_task_fn fn, void *ctx);

void ds_pool_destroy(ds_pool *p);

/* Online CPU count (at least 1). */
int ds_cpu_count(void);

#endif
