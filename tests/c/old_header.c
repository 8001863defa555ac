/* old_header.c: programs built against other versions of fmr.h keep working.
 *
 * - fmr_rollout_hooks as fmr 0.1.0's header declared it (32 bytes, before `deadline_ms`) is
 *   accepted: its fields are read, the newer field takes its default (no deadline).
 * - A header newer than the library (a field this library does not know): accepted while that
 *   field is zero, FMR_ERR_UNSUPPORTED once it is set.
 * - Output structs: the library writes no byte past `struct_size`, zeroes the fields it does
 *   not know, and keeps `struct_size`.
 * - fmr_token_event is read through its `struct_size`.
 * Usage: ./old_header MODEL.gguf    (exit 0 = all checks passed)
 */
#include "expect.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* fmr_rollout_hooks, version 1 (fmr 0.1.0). */
typedef struct {
    uint32_t struct_size;
    fmr_token_callback on_token;
    void *user_data;
    const fmr_cancel_flag *cancel;
} rollout_hooks_v1;

/* fmr_rollout_hooks from a header newer than this library. */
typedef struct {
    fmr_rollout_hooks known;
    uint64_t future_field;
} rollout_hooks_next;

typedef struct {
    size_t tokens;
    bool event_size_ok;
} counter;

static bool count_tokens(const fmr_token_event *ev, void *user_data) {
    counter *c = (counter *)user_data;
    c->tokens++;
    if (ev->struct_size < offsetof(fmr_token_event, forced) + sizeof ev->forced) {
        c->event_size_ok = false;
    }
    return true;
}

static fmr_group_stats stats_of(fmr_result *res) {
    fmr_group_stats s = {.struct_size = sizeof(fmr_group_stats)};
    expect_ok("stats", fmr_result_stats(res, &s));
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    if (sizeof(rollout_hooks_v1) != 32 || offsetof(fmr_rollout_hooks, deadline_ms) != sizeof(rollout_hooks_v1)) {
        fprintf(stderr, "FAIL: version 1 of fmr_rollout_hooks is not a prefix of version 2\n");
        return 1;
    }
    fmr_model *model = NULL;
    expect_ok("load", fmr_model_load(argv[1], strlen(argv[1]), NULL, &model));
    fmr_generator_params gp;
    fmr_generator_params_init(&gp, sizeof gp);
    gp.n_ctx = 512;
    gp.n_seq_max = 2;
    gp.n_threads = 2;
    fmr_generator *gen = NULL;
    expect_ok("generator", fmr_generator_new(model, &gp, &gen));
    if (gen == NULL) {
        return 1;
    }
    const char *problem = "What is 2 + 2?";
    const char *params = "{\"n_samples\": 2, \"max_tokens\": 12}";

    /* 1. A version-1 hooks struct: callback and cancel flag are read; no deadline. */
    counter c = {0, true};
    fmr_cancel_flag *flag = fmr_cancel_flag_new();
    rollout_hooks_v1 v1 = {sizeof(rollout_hooks_v1), count_tokens, &c, flag};
    fmr_result *res = NULL;
    expect_ok("solve with 0.1 hooks", fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params),
                                                          (const fmr_rollout_hooks *)&v1, &res));
    fmr_group_stats s = stats_of(res);
    if (c.tokens == 0 || c.tokens != s.tokens_generated || !c.event_size_ok || s.cancelled) {
        fprintf(stderr, "FAIL: 0.1 hooks: %zu streamed, %zu generated, event size ok %d\n", c.tokens,
                s.tokens_generated, (int)c.event_size_ok);
        failures++;
    }
    for (size_t i = 0; i < fmr_result_n_samples(res); i++) {
        fmr_sample_info info = {.struct_size = sizeof(fmr_sample_info)};
        expect_ok("sample info", fmr_result_sample_info(res, i, &info));
        if (info.finish_reason == FMR_FINISH_DEADLINE) {
            fprintf(stderr, "FAIL: a deadline appeared from nowhere\n");
            failures++;
        }
    }
    fmr_result_free(res);
    res = NULL;
    fmr_cancel_flag_set(flag);
    expect_ok("solve with 0.1 hooks and a set flag",
              fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params),
                                  (const fmr_rollout_hooks *)&v1, &res));
    if (!stats_of(res).cancelled) {
        fprintf(stderr, "FAIL: the 0.1 hooks' cancel flag was not read\n");
        failures++;
    }
    fmr_result_free(res);
    res = NULL;
    fmr_cancel_flag_free(flag);

    /* fmr_rollout_hooks_init writes only the bytes of the caller's version. */
    struct {
        rollout_hooks_v1 hooks;
        unsigned char canary[16];
    } init_v1;
    memset(&init_v1, 0xAB, sizeof init_v1);
    fmr_rollout_hooks_init((fmr_rollout_hooks *)&init_v1.hooks, sizeof init_v1.hooks);
    bool canary_ok = init_v1.hooks.struct_size == sizeof(rollout_hooks_v1) && init_v1.hooks.on_token == NULL &&
                     init_v1.hooks.cancel == NULL;
    for (size_t i = 0; i < sizeof init_v1.canary; i++) {
        canary_ok = canary_ok && init_v1.canary[i] == 0xAB;
    }
    if (!canary_ok) {
        fprintf(stderr, "FAIL: fmr_rollout_hooks_init wrote past a version-1 struct\n");
        failures++;
    }
    /* A size below the first version is not a header: nothing is written. */
    fmr_rollout_hooks tiny;
    memset(&tiny, 0xCD, sizeof tiny);
    fmr_rollout_hooks_init(&tiny, 8);
    if (tiny.struct_size != 0xCDCDCDCDu) {
        fprintf(stderr, "FAIL: init with size 8 wrote\n");
        failures++;
    }
    rollout_hooks_v1 short_hooks = {16, NULL, NULL, NULL};
    expect_error("hooks with struct_size 16",
                 fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params),
                                     (const fmr_rollout_hooks *)&short_hooks, &res),
                 FMR_ERR_INVALID_ARGUMENT);

    /* 2. A newer header: unknown zero fields are fine, set ones are refused. */
    rollout_hooks_next next;
    memset(&next, 0, sizeof next);
    fmr_rollout_hooks_init(&next.known, sizeof next);
    if (next.known.struct_size != sizeof next || next.future_field != 0) {
        fprintf(stderr, "FAIL: init of a newer struct\n");
        failures++;
    }
    expect_ok("solve with a newer header's hooks",
              fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params), &next.known, &res));
    fmr_result_free(res);
    res = NULL;
    next.future_field = 7;
    expect_error("a field this library does not know",
                 fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params), &next.known, &res),
                 FMR_ERR_UNSUPPORTED);
    if (res != NULL) {
        fprintf(stderr, "FAIL: result written on error\n");
        failures++;
    }
    /* The deadline field itself (version 2). */
    fmr_rollout_hooks v2;
    fmr_rollout_hooks_init(&v2, sizeof v2);
    v2.deadline_ms = 1;
    const char *long_params = "{\"n_samples\": 2, \"max_tokens\": 200}";
    const char *long_problem = "Count from 1 to 1000, one number per line.";
    expect_ok("solve with a deadline", fmr_generator_solve(gen, long_problem, strlen(long_problem), long_params,
                                                           strlen(long_params), &v2, &res));
    for (size_t i = 0; res != NULL && i < fmr_result_n_samples(res); i++) {
        fmr_sample_info info = {.struct_size = sizeof(fmr_sample_info)};
        expect_ok("sample info", fmr_result_sample_info(res, i, &info));
        if (info.finish_reason != FMR_FINISH_DEADLINE) {
            fprintf(stderr, "FAIL: sample %zu finished %u, not by the 1 ms deadline\n", i, info.finish_reason);
            failures++;
        }
    }

    /* 3. Output structs: a newer (larger) struct gets zeros past the library's fields; the
     * library never writes past struct_size. */
    struct {
        fmr_group_stats stats;
        uint64_t future_field;
        unsigned char canary[8];
    } big;
    memset(&big, 0xAB, sizeof big);
    big.stats.struct_size = sizeof big.stats + sizeof big.future_field;
    expect_ok("stats into a newer struct", fmr_result_stats(res, &big.stats));
    canary_ok = big.future_field == 0 && big.stats.struct_size == sizeof big.stats + sizeof big.future_field &&
                big.stats.prompt_tokens > 0;
    for (size_t i = 0; i < sizeof big.canary; i++) {
        canary_ok = canary_ok && big.canary[i] == 0xAB;
    }
    if (!canary_ok) {
        fprintf(stderr, "FAIL: output struct bounds\n");
        failures++;
    }
    fmr_result_free(res);
    fmr_generator_free(gen);
    fmr_model_free(model);
    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
