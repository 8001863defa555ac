/* stress_threads.c: threads x generators on one shared model, with random cancels and deadlines.
 *
 * Usage: stress_threads MODEL.gguf WORKERS SOLVES_PER_WORKER SEED
 *
 * The main thread loads one model and gives each worker thread its own generator on it, then
 * frees its own model handle while the workers run (the generators keep the model alive). Each
 * worker solves short problems; every solve has a cancel flag that a separate canceller thread
 * sets at random moments, and some solves carry a short deadline. Every solve must end in a
 * result (complete, cancelled or cut by the deadline), never in an error. Prints one summary
 * line; exits 1 on any unexpected error. Built with -pthread; run under valgrind's DRD or
 * helgrind by the test suite. */
#include "fmr.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WORKERS 8

typedef struct {
    fmr_generator *gen;
    fmr_cancel_flag *cancel;
    int solves;
    unsigned seed;
    int done;
    int failed;
} worker;

static atomic_int workers_running;

static unsigned next_rand(unsigned *state) {
    *state = *state * 1103515245u + 12345u;
    return (*state >> 16) & 0x7fff;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *work(void *arg) {
    worker *w = (worker *)arg;
    const char *problems[] = {"What is 2 + 3?", "Name a prime number.", "What is 10 - 4?"};
    for (int i = 0; i < w->solves; i++) {
        char params[128];
        unsigned r = next_rand(&w->seed);
        if (r % 3 == 0) {
            snprintf(params, sizeof params, "{\"n_samples\": 2, \"max_tokens\": 6, \"deadline_ms\": %u}",
                     1 + r % 50);
        } else {
            snprintf(params, sizeof params, "{\"n_samples\": %u, \"max_tokens\": 6}", 1 + r % 2);
        }
        fmr_cancel_flag_reset(w->cancel);
        fmr_rollout_hooks hooks = fmr_rollout_hooks_default();
        hooks.cancel = w->cancel;
        const char *p = problems[r % 3];
        fmr_result *result = NULL;
        fmr_error *err = fmr_generator_solve(w->gen, p, strlen(p), params, strlen(params), &hooks, &result);
        if (err != NULL) {
            size_t len = 0;
            const char *msg = fmr_error_message(err, &len);
            fprintf(stderr, "solve failed (code %u): %.*s\n", (unsigned)fmr_error_code(err), (int)len, msg);
            fmr_error_free(err);
            w->failed++;
            continue;
        }
        if (fmr_result_n_samples(result) == 0) {
            fprintf(stderr, "a result without samples\n");
            w->failed++;
        }
        w->done++;
        fmr_result_free(result);
    }
    atomic_fetch_sub(&workers_running, 1);
    return NULL;
}

typedef struct {
    worker *workers;
    int n;
    unsigned seed;
    int sets;
} canceller;

static void *cancel_randomly(void *arg) {
    canceller *c = (canceller *)arg;
    while (atomic_load(&workers_running) > 0) {
        unsigned r = next_rand(&c->seed);
        fmr_cancel_flag_set(c->workers[r % (unsigned)c->n].cancel);
        c->sets++;
        sleep_ms(1 + r % 20);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL.gguf WORKERS SOLVES SEED\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    int solves = atoi(argv[3]);
    unsigned seed = (unsigned)strtoul(argv[4], NULL, 10);
    if (n < 1 || n > MAX_WORKERS || solves < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    fmr_model_params mp = fmr_model_default_params();
    fmr_model *model = NULL;
    fmr_error *err = fmr_model_load(argv[1], strlen(argv[1]), &mp, &model);
    if (err != NULL) {
        fmr_error_free(err);
        fprintf(stderr, "load failed\n");
        return 1;
    }
    worker workers[MAX_WORKERS];
    memset(workers, 0, sizeof workers);
    for (int i = 0; i < n; i++) {
        fmr_generator_params gp = fmr_generator_default_params();
        gp.n_ctx = 512;
        gp.n_seq_max = 2;
        gp.n_threads = 1;
        err = fmr_generator_new(model, &gp, &workers[i].gen);
        if (err != NULL) {
            fmr_error_free(err);
            fprintf(stderr, "generator failed\n");
            return 1;
        }
        workers[i].cancel = fmr_cancel_flag_new();
        workers[i].solves = solves;
        workers[i].seed = seed + 7919u * (unsigned)i;
    }
    atomic_store(&workers_running, n);
    pthread_t threads[MAX_WORKERS];
    for (int i = 0; i < n; i++) {
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    /* The generators hold the model; the host's handle can go while they run. */
    fmr_model_free(model);
    canceller c = {workers, n, seed ^ 0x5bd1e995u, 0};
    pthread_t cancel_thread;
    pthread_create(&cancel_thread, NULL, cancel_randomly, &c);
    int done = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
        done += workers[i].done;
        failed += workers[i].failed;
    }
    pthread_join(cancel_thread, NULL);
    for (int i = 0; i < n; i++) {
        fmr_generator_free(workers[i].gen);
        fmr_cancel_flag_free(workers[i].cancel);
    }
    printf("stress: %d workers, %d solves done, %d failed, %d cancel signals\n", n, done, failed, c.sets);
    return failed == 0 ? 0 : 1;
}
