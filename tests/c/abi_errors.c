/* abi_errors.c: every bad input through the C ABI gives an error with a message, never a crash.
 * Usage: ./abi_errors MODEL.gguf    (exit 0 = all checks passed)
 */
#include "expect.h"

#include <stdbool.h>

static bool cancel_at_once(const fmr_token_event *event, void *user_data) {
    (void)event;
    (void)user_data;
    return false;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    fmr_model *model = NULL;

    /* NULL releases are no-ops. */
    fmr_model_free(NULL);
    fmr_generator_free(NULL);
    fmr_result_free(NULL);
    fmr_error_free(NULL);
    fmr_cancel_flag_free(NULL);
    fmr_string_free(NULL);

    expect_error("load NULL path", fmr_model_load(NULL, 5, NULL, &model), FMR_ERR_INVALID_ARGUMENT);
    expect_error("load NULL out", fmr_model_load(path, strlen(path), NULL, NULL), FMR_ERR_INVALID_ARGUMENT);
    expect_error("load missing file", fmr_model_load("/no/such.gguf", 13, NULL, &model), FMR_ERR_MODEL_LOAD);
    const char bad_utf8[] = {'/', 't', 'm', 'p', '/', (char)0xff, (char)0xfe};
    expect_error("load invalid UTF-8 path", fmr_model_load(bad_utf8, sizeof bad_utf8, NULL, &model),
                 FMR_ERR_INVALID_UTF8);
    fmr_model_params mp;
    fmr_model_params_init(&mp, sizeof mp);
    mp.struct_size = 0;
    expect_error("load params without struct_size", fmr_model_load(path, strlen(path), &mp, &model),
                 FMR_ERR_INVALID_ARGUMENT);
    if (model != NULL) {
        fprintf(stderr, "FAIL: out written on error\n");
        failures++;
    }

    expect_ok("load", fmr_model_load(path, strlen(path), NULL, &model));
    fmr_generator *gen = NULL;
    fmr_generator_params gp;
    fmr_generator_params_init(&gp, sizeof gp);
    gp.n_seq_max = 0;
    expect_error("generator n_seq_max 0", fmr_generator_new(model, &gp, &gen), FMR_ERR_INVALID_ARGUMENT);
    expect_error("generator NULL model", fmr_generator_new(NULL, NULL, &gen), FMR_ERR_INVALID_ARGUMENT);
    fmr_generator_params_init(&gp, sizeof gp);
    gp.n_ctx = 256;
    gp.n_seq_max = 4;
    gp.n_threads = 2;
    expect_ok("generator", fmr_generator_new(model, &gp, &gen));

    const char *problem = "What is 2 + 2?";
    fmr_result *res = NULL;
    const char *p_bad_json = "{\"n_samples\": ";
    expect_error("solve malformed JSON", fmr_generator_solve(gen, problem, strlen(problem), p_bad_json,
                                                            strlen(p_bad_json), NULL, &res),
                 FMR_ERR_INVALID_CONFIG);
    const char *p_unknown = "{\"n_sample\": 2}";
    expect_error("solve unknown key", fmr_generator_solve(gen, problem, strlen(problem), p_unknown,
                                                         strlen(p_unknown), NULL, &res),
                 FMR_ERR_INVALID_CONFIG);
    const char *p_range = "{\"sampling\": {\"top_p\": 2.0}}";
    expect_error("solve top_p out of range", fmr_generator_solve(gen, problem, strlen(problem), p_range,
                                                                strlen(p_range), NULL, &res),
                 FMR_ERR_INVALID_ARGUMENT);
    const char *p_big = "{\"n_samples\": 4, \"max_tokens\": 5000}";
    expect_error("solve context too small", fmr_generator_solve(gen, problem, strlen(problem), p_big,
                                                               strlen(p_big), NULL, &res),
                 FMR_ERR_CONTEXT_TOO_SMALL);
    const char bad_problem[] = {'2', '+', (char)0xc3};
    expect_error("solve invalid UTF-8 problem",
                 fmr_generator_solve(gen, bad_problem, sizeof bad_problem, NULL, 0, NULL, &res),
                 FMR_ERR_INVALID_UTF8);
    expect_error("solve NULL generator", fmr_generator_solve(NULL, problem, 1, NULL, 0, NULL, &res),
                 FMR_ERR_INVALID_ARGUMENT);
    if (res != NULL) {
        fprintf(stderr, "FAIL: result written on error\n");
        failures++;
    }

    /* A callback that cancels at once: success with `cancelled` set. */
    const char *p_small = "{\"n_samples\": 2, \"max_tokens\": 16}";
    fmr_rollout_hooks hooks;
    fmr_rollout_hooks_init(&hooks, sizeof hooks);
    hooks.on_token = cancel_at_once;
    expect_ok("solve cancelled by callback",
              fmr_generator_solve(gen, problem, strlen(problem), p_small, strlen(p_small), &hooks, &res));
    fmr_group_stats stats = {.struct_size = sizeof(fmr_group_stats)};
    expect_ok("stats", fmr_result_stats(res, &stats));
    if (!stats.cancelled) {
        fprintf(stderr, "FAIL: cancelled flag not set\n");
        failures++;
    }
    /* A flag set before the call: cancelled before any token. */
    fmr_cancel_flag *flag = fmr_cancel_flag_new();
    fmr_cancel_flag_set(flag);
    fmr_rollout_hooks hooks2;
    fmr_rollout_hooks_init(&hooks2, sizeof hooks2);
    hooks2.cancel = flag;
    fmr_result *res2 = NULL;
    expect_ok("solve with set flag",
              fmr_generator_solve(gen, problem, strlen(problem), p_small, strlen(p_small), &hooks2, &res2));
    fmr_group_stats stats2 = {.struct_size = sizeof(fmr_group_stats)};
    expect_ok("stats2", fmr_result_stats(res2, &stats2));
    if (!stats2.cancelled || stats2.tokens_generated != 0) {
        fprintf(stderr, "FAIL: pre-set flag should cancel before any token (%zu)\n", stats2.tokens_generated);
        failures++;
    }
    fmr_result_free(res2);
    fmr_cancel_flag_free(flag);

    /* Accessors: out-of-range indices and NULL outputs. */
    const char *text = NULL;
    size_t len = 0;
    expect_error("sample text out of range", fmr_result_sample_text(res, 99, &text, &len), FMR_ERR_OUT_OF_RANGE);
    expect_error("sample text NULL out", fmr_result_sample_text(res, 0, NULL, &len), FMR_ERR_INVALID_ARGUMENT);
    expect_error("answer key out of range", fmr_result_sample_answer_key(res, 99, &text, &len), FMR_ERR_OUT_OF_RANGE);
    expect_error("answer display out of range", fmr_result_sample_answer_display(res, 99, &text, &len),
                 FMR_ERR_OUT_OF_RANGE);
    fmr_vote vote = {.struct_size = sizeof(fmr_vote)};
    expect_error("vote out of range", fmr_result_vote(res, 99, &vote), FMR_ERR_OUT_OF_RANGE);
    expect_error("stats NULL result", fmr_result_stats(NULL, &stats), FMR_ERR_INVALID_ARGUMENT);
    fmr_group_stats unsized = {.struct_size = 0};
    expect_error("stats without struct_size", fmr_result_stats(res, &unsized), FMR_ERR_INVALID_ARGUMENT);
    fmr_sample_info info = {.struct_size = 3};
    expect_error("sample info with a too small struct_size", fmr_result_sample_info(res, 0, &info),
                 FMR_ERR_INVALID_ARGUMENT);
    if (fmr_result_n_samples(NULL) != 0 || fmr_model_n_vocab(NULL) != 0) {
        fprintf(stderr, "FAIL: NULL counts\n");
        failures++;
    }
    char *json = NULL;
    size_t json_len = 0;
    expect_ok("to_json", fmr_result_to_json(res, &json, &json_len));
    if (json == NULL || strlen(json) != json_len || strstr(json, "\"samples\"") == NULL) {
        fprintf(stderr, "FAIL: json\n");
        failures++;
    }
    fmr_string_free(json);

    /* Tokenize with the caller-buffer protocol. */
    size_t needed = 0;
    expect_ok("tokenize size query", fmr_model_tokenize(model, problem, strlen(problem), false, NULL, 0, &needed));
    int32_t toks[64];
    size_t got = 0;
    expect_ok("tokenize", fmr_model_tokenize(model, problem, strlen(problem), false, toks, 64, &got));
    if (needed == 0 || got != needed) {
        fprintf(stderr, "FAIL: tokenize sizes %zu vs %zu\n", needed, got);
        failures++;
    }

    fmr_result_free(res);
    fmr_generator_free(gen);
    fmr_model_free(model);
    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
