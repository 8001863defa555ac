/* solve.c: load a model through the C ABI, solve one problem with a group of samples and
 * early stopping, print each sample's answer and the vote.
 *
 * Build against an installed fmr (scripts/install.sh --prefix PREFIX):
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror examples/c/solve.c -o solve \
 *      $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs fmr)
 * Usage: ./solve MODEL.gguf ["problem text"] ["params json"]
 */
#include "fmr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints an error, frees it, returns 1 (or 0 when err is NULL). */
static int report(const char *what, fmr_error *err) {
    if (err == NULL) {
        return 0;
    }
    size_t len = 0;
    const char *msg = fmr_error_message(err, &len);
    fprintf(stderr, "%s failed (code %u): %.*s\n", what, (unsigned)fmr_error_code(err), (int)len, msg);
    fmr_error_free(err);
    return 1;
}

typedef struct {
    size_t tokens_seen;
} stream_state;

static bool on_token(const fmr_token_event *event, void *user_data) {
    stream_state *state = (stream_state *)user_data;
    state->tokens_seen += 1;
    if (event->sample == 0) {
        fwrite(event->piece, 1, event->piece_len, stdout);
        fflush(stdout);
    }
    return true; /* keep going */
}

static const char *finish_name(fmr_finish_reason r) {
    switch (r) {
    case FMR_FINISH_EOS: return "eos";
    case FMR_FINISH_STOP: return "stop";
    case FMR_FINISH_LENGTH: return "length";
    case FMR_FINISH_BUDGET: return "budget";
    case FMR_FINISH_FORCED: return "forced";
    case FMR_FINISH_CONSENSUS: return "consensus";
    case FMR_FINISH_DEADLINE: return "deadline";
    case FMR_FINISH_CANCELLED: return "cancelled";
    default: return "?";
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [problem] [params-json]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    const char *problem = argc > 2 ? argv[2]
                                   : "Natalia sold clips to 48 of her friends in April, and then she sold "
                                     "half as many clips in May. How many clips did Natalia sell altogether "
                                     "in April and May?";
    const char *params = argc > 3 ? argv[3]
                                  : "{\"n_samples\": 4, \"max_tokens\": 96, "
                                    "\"consensus\": {\"rule\": \"lossless\"}}";

    printf("fmr %s (header %s)\n", fmr_version(), FMR_VERSION);
    if (fmr_version_number() != FMR_VERSION_NUMBER) {
        fprintf(stderr, "warning: compiled against fmr %s, running with %s\n", FMR_VERSION, fmr_version());
    }

    fmr_model *model = NULL;
    fmr_model_params mp;
    fmr_model_params_init(&mp, sizeof mp);
    if (report("fmr_model_load", fmr_model_load(model_path, strlen(model_path), &mp, &model))) {
        return 1;
    }

    fmr_generator_params gp;
    fmr_generator_params_init(&gp, sizeof gp);
    gp.n_ctx = 2048;
    gp.n_seq_max = 8;
    gp.n_threads = 2;
    fmr_generator *gen = NULL;
    if (report("fmr_generator_new", fmr_generator_new(model, &gp, &gen))) {
        fmr_model_free(model);
        return 1;
    }
    /* The generator keeps the model alive: the model handle can go now. */
    fmr_model_free(model);

    stream_state state = {0};
    fmr_cancel_flag *cancel = fmr_cancel_flag_new();
    fmr_rollout_hooks hooks;
    fmr_rollout_hooks_init(&hooks, sizeof hooks);
    hooks.on_token = on_token;
    hooks.user_data = &state;
    hooks.cancel = cancel;

    fmr_result *result = NULL;
    int rc = report("fmr_generator_solve",
                    fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params), &hooks, &result));
    printf("\n");
    if (rc == 0) {
        size_t n = fmr_result_n_samples(result);
        for (size_t i = 0; i < n; i++) {
            fmr_sample_info info = {.struct_size = sizeof(fmr_sample_info)};
            const char *answer = NULL;
            size_t answer_len = 0;
            if (report("fmr_result_sample_info", fmr_result_sample_info(result, i, &info)) ||
                report("fmr_result_sample_answer_display",
                       fmr_result_sample_answer_display(result, i, &answer, &answer_len))) {
                rc = 1;
                break;
            }
            printf("sample %zu: %zu tokens, %s, answer %.*s\n", i, info.n_tokens, finish_name(info.finish_reason),
                   answer ? (int)answer_len : 4, answer ? answer : "none");
        }
        fmr_group_stats stats = {.struct_size = sizeof(fmr_group_stats)};
        if (rc == 0 && !report("fmr_result_stats", fmr_result_stats(result, &stats))) {
            for (size_t v = 0; v < fmr_result_n_votes(result); v++) {
                fmr_vote vote = {.struct_size = sizeof(fmr_vote)};
                if (report("fmr_result_vote", fmr_result_vote(result, v, &vote))) {
                    rc = 1;
                    break;
                }
                printf("%s %.*s (%zu of %zu)\n", v == 0 ? "vote:" : "     ", (int)vote.display_len, vote.display,
                       vote.count, n);
            }
            if (fmr_result_n_votes(result) == 0) {
                printf("vote: none\n");
            }
            printf("tokens: %zu generated, %zu without early stopping, streamed %zu, %.2f s\n",
                   stats.tokens_generated, stats.tokens_fixed_budget, state.tokens_seen, stats.wall_seconds);
        }
    }
    fmr_result_free(result);
    fmr_cancel_flag_free(cancel);
    fmr_generator_free(gen);
    return rc;
}
