/* trainer_errors.c: bad input to the trainer's C ABI gives an error with a message and leaves
 * out-parameters and the trainer untouched; never a crash. A failing host reward is its own
 * error (not a cancel, no checkpoint). step_count may be polled from another thread during a
 * run; the trainer's other functions answer FMR_ERR_BUSY meanwhile.
 * Usage: ./trainer_errors MODEL.gguf TRAIN.jsonl OUT_DIR    (exit 0 = all checks passed)
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "expect.h"

#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

static bool file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f != NULL) {
        fclose(f);
    }
    return f != NULL;
}

/* A thread that polls fmr_trainer_step_count while the main thread runs the trainer. */
typedef struct {
    const fmr_trainer *trainer;
    atomic_bool done;
    uint64_t polls;
    uint64_t last;
    bool went_back;
} poller;

static void *poll_steps(void *arg) {
    poller *p = (poller *)arg;
    while (!atomic_load(&p->done)) {
        uint64_t n = fmr_trainer_step_count(p->trainer);
        if (n < p->last) {
            p->went_back = true;
        }
        p->last = n;
        p->polls++;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return NULL;
}

/* The progress callback tries the trainer's other functions while the run holds it. */
typedef struct {
    fmr_trainer *trainer;
    const char *out_dir;
    int calls;
} progress_state;

static bool on_progress(const char *json, size_t len, void *user_data) {
    progress_state *st = (progress_state *)user_data;
    st->calls++;
    if (len != strlen(json) || strstr(json, "\"step\":1") == NULL) {
        fprintf(stderr, "FAIL progress json: %s\n", json);
        failures++;
    }
    if (fmr_trainer_step_count(st->trainer) != 1) {
        fprintf(stderr, "FAIL: step_count in the progress callback is %llu\n",
                (unsigned long long)fmr_trainer_step_count(st->trainer));
        failures++;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/busy.gguf", st->out_dir);
    expect_error("save_adapter from the progress callback",
                 fmr_trainer_save_adapter(st->trainer, path, strlen(path), FMR_ADAPTER_GGUF), FMR_ERR_BUSY);
    expect_error("step from the progress callback", fmr_trainer_step(st->trainer, "", 0, NULL, NULL, NULL),
                 FMR_ERR_BUSY);
    return true;
}

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
             " \"threads\": 2, \"max_steps\": 1,"
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
    expect_error("step with failing host reward", fmr_trainer_step(t, "", 0, NULL, NULL, NULL),
                 FMR_ERR_CALLBACK_FAILED);
    if (fmr_trainer_step_count(t) != 0) {
        fprintf(stderr, "FAIL: failed steps changed the step count\n");
        failures++;
    }
    /* A run whose host reward fails returns that error and writes no checkpoint (a cancel does). */
    char checkpoint[1024];
    snprintf(checkpoint, sizeof checkpoint, "%s/checkpoint.safetensors", argv[3]);
    expect_error("run with failing host reward", fmr_trainer_run(t, NULL, NULL, NULL, NULL),
                 FMR_ERR_CALLBACK_FAILED);
    if (file_exists(checkpoint)) {
        fprintf(stderr, "FAIL: a failing reward was checkpointed like a cancel\n");
        failures++;
    }
    flag = fmr_cancel_flag_new();
    fmr_cancel_flag_set(flag);
    expect_error("run cancelled", fmr_trainer_run(t, NULL, NULL, flag, NULL), FMR_ERR_CANCELLED);
    fmr_cancel_flag_free(flag);
    if (!file_exists(checkpoint)) {
        fprintf(stderr, "FAIL: a cancelled run wrote no checkpoint\n");
        failures++;
    }
    expect_ok("remove the host reward", fmr_trainer_set_reward_callback(t, NULL, NULL, 1.0));

    /* One real step in a run, with another thread polling step_count throughout. */
    poller p = {.trainer = t, .polls = 0, .last = 0, .went_back = false};
    atomic_init(&p.done, false);
    pthread_t th;
    if (pthread_create(&th, NULL, poll_steps, &p) != 0) {
        fprintf(stderr, "FAIL: pthread_create\n");
        return 1;
    }
    progress_state st = {.trainer = t, .out_dir = argv[3], .calls = 0};
    fmr_run_end end = 0;
    expect_ok("run one step", fmr_trainer_run(t, on_progress, &st, NULL, &end));
    atomic_store(&p.done, true);
    pthread_join(th, NULL);
    if (st.calls != 1 || end != FMR_RUN_FINISHED || fmr_trainer_step_count(t) != 1) {
        fprintf(stderr, "FAIL: run: %d progress calls, end %u, %llu steps\n", st.calls, (unsigned)end,
                (unsigned long long)fmr_trainer_step_count(t));
        failures++;
    }
    if (p.polls == 0 || p.went_back || p.last > 1) {
        fprintf(stderr, "FAIL: poller saw %llu polls, last %llu, went back %d\n", (unsigned long long)p.polls,
                (unsigned long long)p.last, (int)p.went_back);
        failures++;
    } else {
        printf("ok   step_count polled %llu times during the run\n", (unsigned long long)p.polls);
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
