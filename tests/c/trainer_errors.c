/* trainer_errors.c: bad input to the trainer's C ABI gives an error with a message and leaves
 * out-parameters and the trainer untouched; never a crash.
 * Usage: ./trainer_errors MODEL.gguf TRAIN.jsonl OUT_DIR    (exit 0 = all checks passed)
 */
#include "expect.h"

#include <stdbool.h>

static bool failing_reward(const fmr_reward_input *in, void *user_data, double *reward) {
    (void)in;
    (void)user_data;
    (void)reward;
    return false;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf TRAIN.jsonl OUT_DIR\n", argv[0]);
        return 2;
    }
    fmr_trainer *t = NULL;
    fmr_trainer_free(NULL);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"preset\": \"small\", \"model\": \"%s\", \"out_dir\": \"%s\", \"data\": {\"train\": \"%s\"},"
             " \"lora\": {\"rank\": 2, \"alpha\": 4, \"targets\": [\"q\"]},"
             " \"grpo\": {\"prompts_per_step\": 1, \"generations\": 2, \"max_completion_tokens\": 8}}",
             argv[1], argv[3], argv[2]);

    expect_error("new NULL config", fmr_trainer_new(NULL, 4, FMR_STAGE_GRPO, &t), FMR_ERR_INVALID_ARGUMENT);
    expect_error("new NULL out", fmr_trainer_new(cfg, strlen(cfg), FMR_STAGE_GRPO, NULL),
                 FMR_ERR_INVALID_ARGUMENT);
    const char bad_utf8[] = {'{', '"', (char)0xff, '"', '}'};
    expect_error("new invalid UTF-8", fmr_trainer_new(bad_utf8, sizeof bad_utf8, FMR_STAGE_GRPO, &t),
                 FMR_ERR_INVALID_UTF8);
    expect_error("new bad stage", fmr_trainer_new(cfg, strlen(cfg), 9, &t), FMR_ERR_OUT_OF_RANGE);
    const char *malformed = "{\"model\": ";
    expect_error("new malformed JSON", fmr_trainer_new(malformed, strlen(malformed), FMR_STAGE_SFT, &t),
                 FMR_ERR_INVALID_CONFIG);
    const char *unknown = "{\"grpo\": {\"generatons\": 4}}";
    expect_error("new unknown key", fmr_trainer_new(unknown, strlen(unknown), FMR_STAGE_GRPO, &t),
                 FMR_ERR_INVALID_CONFIG);
    const char *bad_range = "{\"grpo\": {\"generations\": 0}}";
    expect_error("new out-of-range value", fmr_trainer_new(bad_range, strlen(bad_range), FMR_STAGE_GRPO, &t),
                 FMR_ERR_INVALID_CONFIG);
    const char *no_model = "{\"model\": \"/no/such/model.gguf\", \"data\": {\"train\": \"x.jsonl\"}}";
    expect_error("new missing model", fmr_trainer_new(no_model, strlen(no_model), FMR_STAGE_GRPO, &t),
                 FMR_ERR_MODEL_LOAD);
    if (t != NULL) {
        fprintf(stderr, "FAIL: out written on error\n");
        failures++;
    }

    fmr_error *err = fmr_trainer_new(cfg, strlen(cfg), FMR_STAGE_GRPO, &t);
    if (err != NULL) {
        fprintf(stderr, "FAIL new valid: %s\n", fmr_error_message(err, NULL));
        fmr_error_free(err);
        return 1;
    }
    expect_error("step NULL trainer", fmr_trainer_step(NULL, "", 0, NULL, NULL, NULL), FMR_ERR_INVALID_ARGUMENT);
    const char *bad_batch = "{\"problem\": 3}";
    expect_error("step malformed batch", fmr_trainer_step(t, bad_batch, strlen(bad_batch), NULL, NULL, NULL),
                 FMR_ERR_INVALID_CONFIG);
    expect_error("step empty batch", fmr_trainer_step(t, "[]", 2, NULL, NULL, NULL), FMR_ERR_INVALID_ARGUMENT);
    fmr_cancel_flag *flag = fmr_cancel_flag_new();
    fmr_cancel_flag_set(flag);
    expect_error("step cancelled", fmr_trainer_step(t, "", 0, flag, NULL, NULL), FMR_ERR_CANCELLED);
    fmr_cancel_flag_free(flag);
    expect_error("reward NaN weight", fmr_trainer_set_reward_callback(t, failing_reward, NULL, 0.0 / 0.0),
                 FMR_ERR_INVALID_ARGUMENT);
    err = fmr_trainer_set_reward_callback(t, failing_reward, NULL, 1.0);
    if (err != NULL) {
        fmr_error_free(err);
        failures++;
    }
    expect_error("step with failing host reward", fmr_trainer_step(t, "", 0, NULL, NULL, NULL), FMR_ERR_CANCELLED);
    if (fmr_trainer_step_count(t) != 0) {
        fprintf(stderr, "FAIL: failed steps changed the step count\n");
        failures++;
    }
    expect_error("save bad format", fmr_trainer_save_adapter(t, "/tmp/x", 6, 77), FMR_ERR_OUT_OF_RANGE);
    expect_error("save empty path", fmr_trainer_save_adapter(t, "", 0, FMR_ADAPTER_GGUF), FMR_ERR_INVALID_ARGUMENT);
    expect_error("load missing adapter", fmr_trainer_load_adapter(t, "/no/such/adapter", 16),
                 FMR_ERR_ADAPTER_LOAD);
    expect_error("run NULL trainer", fmr_trainer_run(NULL, NULL, NULL, NULL, NULL), FMR_ERR_INVALID_ARGUMENT);
    if (fmr_trainer_step_count(NULL) != 0) {
        failures++;
    }
    fmr_trainer_free(t);
    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
