/* early_stopping.c: the confidence signals and early-stopping results through the C ABI, and
 * the token scheduler (fit, save, load, predict) with the policy model's prompt encoder.
 *
 * Usage: ./early_stopping MODEL.gguf TMPDIR    (exit 0 = all checks passed)
 */
#include "expect.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    size_t events;
    size_t bad;
    float first_confidence[4];
    bool seen_first[4];
} stream_check;

static bool on_token(const fmr_token_event *ev, void *user_data) {
    stream_check *c = (stream_check *)user_data;
    c->events++;
    if (ev->struct_size < offsetof(fmr_token_event, top_logprobs) + sizeof ev->top_logprobs) {
        c->bad++;
        return true;
    }
    if (!ev->forced) {
        float sum = 0.0f;
        for (uint32_t j = 0; j < ev->top_k; j++) {
            sum += ev->top_logprobs[j];
            if (j > 0 && ev->top_logprobs[j] > ev->top_logprobs[j - 1]) {
                c->bad++;
            }
        }
        if (ev->top_k != 20 || fabsf(-sum / 20.0f - ev->confidence) > 1e-4f) {
            c->bad++;
        }
    }
    if (ev->sample < 4 && !c->seen_first[ev->sample]) {
        c->seen_first[ev->sample] = true;
        c->first_confidence[ev->sample] = ev->confidence;
    }
    return true;
}

static void check_result(fmr_result *res, const stream_check *sc) {
    size_t n = fmr_result_n_samples(res);
    if (n != 4) {
        fprintf(stderr, "FAIL n_samples %zu\n", n);
        failures++;
    }
    for (size_t i = 0; i < n; i++) {
        const float *conf = NULL;
        size_t n_conf = 0;
        expect_ok("sample_confidence", fmr_result_sample_confidence(res, i, &conf, &n_conf));
        const int32_t *tokens = NULL;
        const float *logprobs = NULL;
        size_t n_tokens = 0;
        expect_ok("sample_tokens", fmr_result_sample_tokens(res, i, &tokens, &logprobs, &n_tokens));
        const int32_t *top = NULL;
        const float *top_lp = NULL;
        size_t k = 0, rows = 0;
        expect_ok("top_logprobs", fmr_result_sample_top_logprobs(res, i, &top, &top_lp, &k, &rows));
        fmr_sample_info info = {.struct_size = sizeof(fmr_sample_info)};
        expect_ok("sample_info", fmr_result_sample_info(res, i, &info));
        if (n_conf != n_tokens || k != 20 || rows != n_tokens || !info.has_confidence ||
            info.confidence_lowest_window > info.confidence_mean + 1e-4f || info.n_probes == 0 ||
            info.probe_tokens == 0) {
            fprintf(stderr, "FAIL sample %zu: %zu conf, %zu tokens, k %zu rows %zu, probes %zu\n", i, n_conf,
                    n_tokens, k, rows, info.n_probes);
            failures++;
        }
        if (n_conf > 0 && sc->seen_first[i] && conf[0] != sc->first_confidence[i]) {
            fprintf(stderr, "FAIL sample %zu: streamed confidence differs\n", i);
            failures++;
        }
        /* a 0.2 caller's struct (before confidence_mean) is still accepted */
        unsigned char old[64];
        memset(old, 0xAB, sizeof old);
        uint32_t v1 = (uint32_t)offsetof(fmr_sample_info, confidence_mean);
        memcpy(old, &v1, sizeof v1);
        expect_ok("sample_info v1", fmr_result_sample_info(res, i, (fmr_sample_info *)(void *)old));
        if (old[v1] != 0xAB) {
            fprintf(stderr, "FAIL sample_info wrote past a v1 struct_size\n");
            failures++;
        }
    }
    fmr_group_stats st = {.struct_size = sizeof(fmr_group_stats)};
    expect_ok("stats", fmr_result_stats(res, &st));
    if (st.probe_tokens == 0 || !st.has_confidence_threshold || st.confidence_threshold != -1.0) {
        fprintf(stderr, "FAIL stats: probe tokens %zu, threshold %d %f\n", st.probe_tokens,
                st.has_confidence_threshold, st.confidence_threshold);
        failures++;
    }
    for (size_t v = 0; v < fmr_result_n_votes(res); v++) {
        fmr_vote vote = {.struct_size = sizeof(fmr_vote)};
        expect_ok("vote", fmr_result_vote(res, v, &vote));
        if (vote.weight <= 0.0) {
            fprintf(stderr, "FAIL vote weight %f\n", vote.weight);
            failures++;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf TMPDIR\n", argv[0]);
        return 2;
    }
    if (FMR_FINISH_LOW_CONFIDENCE != 9 || FMR_FINISH_PROBE != 10) {
        fprintf(stderr, "FAIL finish reason values\n");
        return 1;
    }
    fmr_model *model = NULL;
    fmr_model_params mp;
    fmr_model_params_init(&mp, sizeof mp);
    expect_ok("model_load", fmr_model_load(argv[1], strlen(argv[1]), &mp, &model));
    if (model == NULL) {
        return 1;
    }
    fmr_generator_params gp;
    fmr_generator_params_init(&gp, sizeof gp);
    gp.n_ctx = 8192;
    gp.n_seq_max = 8;
    gp.n_threads = 1;
    fmr_generator *gen = NULL;
    expect_ok("generator_new", fmr_generator_new(model, &gp, &gen));

    const char *problem = "Tom reads 5 pages a day for 6 days. How many pages does he read?";
    const char *params = "{\"n_samples\": 4, \"max_tokens\": 40, \"sampling\": {\"seed\": 3},"
                         " \"confidence\": {\"keep_top_logprobs\": true, \"window\": 8},"
                         " \"vote\": {\"weight\": \"lowest_window\"},"
                         " \"confidence_stop\": {\"threshold\": {\"source\": \"fixed\", \"value\": -1}},"
                         " \"probe\": {\"every\": 8, \"agree\": 1000},"
                         " \"answer\": {\"last_number_fallback\": true}}";
    stream_check sc;
    memset(&sc, 0, sizeof sc);
    fmr_rollout_hooks hooks;
    fmr_rollout_hooks_init(&hooks, sizeof hooks);
    hooks.on_token = on_token;
    hooks.user_data = &sc;
    fmr_result *res = NULL;
    expect_ok("solve", fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params), &hooks, &res));
    if (res != NULL) {
        if (sc.events == 0 || sc.bad != 0) {
            fprintf(stderr, "FAIL stream: %zu events, %zu bad\n", sc.events, sc.bad);
            failures++;
        }
        check_result(res, &sc);
        fmr_result_free(res);
    }

    /* The token scheduler with the policy model's pooled prompt state. */
    const char *enc = "{\"kind\": \"prompt\", \"threads\": 1}";
    const char *examples =
        "[{\"problem\": \"What is 2 + 2?\", \"lengths\": [20, 24]},"
        " {\"problem\": \"What is 3 + 5?\", \"lengths\": [22, 18]},"
        " {\"problem\": \"A train leaves at 3 pm at 60 km/h and another at 4 pm at 80 km/h on the same track. "
        "When does the second catch up, and how far from the station? Explain every step.\", \"lengths\": [300, 340]},"
        " {\"problem\": \"A tank fills in 6 hours and drains in 9 hours. With both open, and a second pipe that "
        "fills it in 12 hours opened after 2 hours, when is it full? Explain every step.\", \"lengths\": [320, 280]},"
        " {\"problem\": \"What is 7 - 4?\", \"lengths\": [16, 20]},"
        " {\"problem\": \"Three friends share 45 stickers so that the first has twice the second and the third "
        "has 5 more than the second. How many does each have? Explain every step.\", \"lengths\": [260, 300]}]";
    fmr_budget *budget = NULL;
    expect_ok("budget_fit", fmr_budget_fit(model, enc, strlen(enc), examples, strlen(examples), &budget));
    if (budget != NULL) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/budget", argv[2]);
        expect_ok("budget_save", fmr_budget_save(budget, dir, strlen(dir)));
        fmr_budget *loaded = NULL;
        expect_ok("budget_load", fmr_budget_load(model, dir, strlen(dir), enc, strlen(enc), &loaded));
        size_t a = 0, b = 0;
        const char *p1 = "What is 2 + 2?";
        expect_ok("budget_predict", fmr_budget_predict(budget, p1, strlen(p1), 0.9, 1.2, &a));
        expect_ok("budget_predict loaded", fmr_budget_predict(loaded, p1, strlen(p1), 0.9, 1.2, &b));
        double mean = 0.0;
        expect_ok("budget_predict_mean", fmr_budget_predict_mean(loaded, p1, strlen(p1), &mean));
        if (a == 0 || a != b || !(mean > 0.0)) {
            fprintf(stderr, "FAIL budget: %zu vs %zu, mean %f\n", a, b, mean);
            failures++;
        }
        expect_error("budget_predict bad quantile", fmr_budget_predict(budget, p1, strlen(p1), 2.0, 1.0, &a),
                     FMR_ERR_INVALID_ARGUMENT);
        const char *onnx_missing = "{\"kind\": \"onnx\", \"model\": \"/nonexistent.onnx\", \"tokenizer\": \"/x.json\"}";
        fmr_budget *none = NULL;
        fmr_error *e = fmr_budget_load(model, dir, strlen(dir), onnx_missing, strlen(onnx_missing), &none);
        if (e == NULL || none != NULL) {
            fprintf(stderr, "FAIL budget_load with a missing encoder succeeded\n");
            failures++;
        }
        fmr_error_free(e);
        fmr_budget_free(loaded);
        fmr_budget_free(budget);
    }
    fmr_budget_free(NULL);
    fmr_generator_free(gen);
    fmr_model_free(model);
    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
