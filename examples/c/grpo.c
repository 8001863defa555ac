/* grpo.c: two GRPO steps of the recipe through the C ABI, with a host reward added to the
 * paper's rewards: step 1 on a batch the host supplies, step 2 on rows the trainer samples from
 * the data file. Then the adapter is saved for llama.cpp (GGUF) and PEFT.
 *
 * Build against an installed fmr (scripts/install.sh --prefix PREFIX):
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror examples/c/grpo.c -o grpo \
 *      $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs fmr)
 * Usage: ./grpo MODEL.gguf TRAIN.jsonl OUT_DIR
 */
#include "fmr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int report(const char *what, fmr_error *err) {
    if (err == NULL) {
        return 0;
    }
    size_t len = 0;
    const char *msg = fmr_error_message(err, &len);
    fprintf(stderr, "%s failed (code %u): %.*s\n", what, (unsigned)fmr_error_code(err), (int)len,
            msg);
    fmr_error_free(err);
    return 1;
}

/* Host reward: +1 for a completion that states a number followed by a period within its first
 * 200 bytes, else 0. Counts its calls. */
typedef struct {
    unsigned calls;
} reward_state;

static bool brevity_reward(const fmr_reward_input *in, void *user_data, double *reward) {
    reward_state *st = (reward_state *)user_data;
    st->calls += 1;
    size_t n = in->completion_len < 200 ? in->completion_len : 200;
    double r = 0.0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (in->completion[i] >= '0' && in->completion[i] <= '9' && in->completion[i + 1] == '.') {
            r = 1.0;
            break;
        }
    }
    *reward = r;
    return true;
}

/* Prints a few fields of a step's metrics JSON (a plain substring scan keeps this example free
 * of a JSON library). */
static void print_field(const char *json, const char *key) {
    const char *p = strstr(json, key);
    if (p == NULL) {
        return;
    }
    const char *end = p;
    while (*end != '\0' && *end != ',' && *end != '}') {
        end++;
    }
    printf("  %.*s\n", (int)(end - p), p);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf TRAIN.jsonl OUT_DIR\n", argv[0]);
        return 2;
    }
    char config[2048];
    int n = snprintf(config, sizeof config,
                     "{\"preset\": \"small\", \"model\": \"%s\", \"out_dir\": \"%s\","
                     " \"threads\": 2, \"seed\": 7,"
                     " \"data\": {\"train\": \"%s\"},"
                     " \"lora\": {\"rank\": 4, \"alpha\": 8, \"targets\": [\"q\", \"v\"], \"seed\": 1},"
                     " \"optimizer\": {\"lr\": 0.001, \"schedule\": {\"kind\": \"constant\", \"warmup\": 0}},"
                     " \"grpo\": {\"prompts_per_step\": 2, \"generations\": 4,"
                     " \"max_completion_tokens\": 40}}",
                     argv[1], argv[3], argv[2]);
    if (n < 0 || (size_t)n >= sizeof config) {
        fprintf(stderr, "paths too long\n");
        return 2;
    }
    fmr_trainer *trainer = NULL;
    if (report("fmr_trainer_new", fmr_trainer_new(config, strlen(config), FMR_STAGE_GRPO, &trainer))) {
        return 1;
    }
    reward_state st = {0};
    int rc = 0;
    if (report("fmr_trainer_set_reward_callback",
               fmr_trainer_set_reward_callback(trainer, brevity_reward, &st, 0.5))) {
        rc = 1;
        goto done;
    }
    const char *batch = "[{\"problem\": \"Tom has 3 apples and buys 4 more. How many apples does he have?\","
                        " \"answer\": \"7\"},"
                        " {\"problem\": \"A box holds 6 eggs. How many eggs are in 2 boxes?\", \"answer\": \"12\"}]";
    for (int step = 1; step <= 2; step++) {
        char *metrics = NULL;
        const char *b = step == 1 ? batch : "";
        /* the metrics are NUL-terminated: no need for their length here */
        fmr_error *err = fmr_trainer_step(trainer, b, strlen(b), NULL, &metrics, NULL);
        if (report("fmr_trainer_step", err)) {
            rc = 1;
            goto done;
        }
        printf("step %d (%s batch):\n", step, step == 1 ? "host" : "sampled");
        print_field(metrics, "\"step\"");
        print_field(metrics, "\"loss\"");
        print_field(metrics, "\"accuracy\"");
        print_field(metrics, "\"completion_tokens_mean\"");
        print_field(metrics, "\"grad_norm\"");
        if (strstr(metrics, "\"reward_custom\"") == NULL) {
            fprintf(stderr, "metrics lack the host reward\n");
            rc = 1;
        }
        fmr_string_free(metrics);
    }
    printf("host reward calls: %u\n", st.calls);
    printf("steps taken: %llu\n", (unsigned long long)fmr_trainer_step_count(trainer));
    char path[1024];
    snprintf(path, sizeof path, "%s/adapter-c.gguf", argv[3]);
    if (report("save gguf", fmr_trainer_save_adapter(trainer, path, strlen(path), FMR_ADAPTER_GGUF))) {
        rc = 1;
        goto done;
    }
    snprintf(path, sizeof path, "%s/adapter-c", argv[3]);
    if (report("save peft", fmr_trainer_save_adapter(trainer, path, strlen(path), FMR_ADAPTER_PEFT))) {
        rc = 1;
        goto done;
    }
    printf("adapters saved\n");
done:
    fmr_trainer_free(trainer);
    return rc;
}
