/* verify_rewards.c: the verifier and the paper's rewards through the C ABI, checked against
 * values computed by hand from the formulas. Exit 0 = all checks passed. */
#include "fmr.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "FAIL line %d: ", __LINE__);                                                     \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static fmr_verdict verify(const char *gold, const char *pred, bool completion) {
    fmr_verdict v = {.struct_size = sizeof(fmr_verdict)};
    fmr_error *err = fmr_verify(gold, strlen(gold), pred, strlen(pred), completion, NULL, 0, &v, NULL, NULL);
    CHECK(err == NULL, "fmr_verify(%s, %s): %s", gold, pred, fmr_error_message(err, NULL));
    fmr_error_free(err);
    return v;
}

static bool close_to(double a, double b) { return fabs(a - b) < 1e-9; }

int main(void) {
    const double pi = 3.14159265358979323846;
    fmr_verdict v = verify("1/2", "0.5", false);
    CHECK(v.struct_size == sizeof(fmr_verdict), "struct_size kept: %u", v.struct_size);
    CHECK(v.equivalent && v.reason == FMR_VERDICT_NUMERIC_EXACT, "1/2 vs 0.5: %d %u", v.equivalent, v.reason);
    v = verify("\\frac{1}{2}", "<think>half of one</think> The answer is \\boxed{\\dfrac12}.", true);
    CHECK(v.equivalent, "completion with dfrac");
    v = verify("7,425,000", "7425000", false);
    CHECK(v.equivalent, "thousands separators");
    v = verify("[2,5)", "(2,5]", false);
    CHECK(!v.equivalent && v.reason == FMR_VERDICT_NOT_EQUIVALENT, "interval ends: reason %u", v.reason);
    v = verify("3", "no answer here", true);
    CHECK(!v.equivalent && v.reason == FMR_VERDICT_PREDICTION_MISSING, "missing: reason %u", v.reason);

    /* detail string, bad options, bad UTF-8 */
    char *detail = NULL;
    size_t detail_len = 0;
    fmr_error *err = fmr_verify("2", 1, NULL, 3, false, NULL, 0, &v, &detail, &detail_len);
    CHECK(err != NULL && fmr_error_code(err) == FMR_ERR_INVALID_ARGUMENT, "NULL predicted with length 3");
    fmr_error_free(err);
    err = fmr_verify("2", 1, "2.0", 3, false, NULL, 0, &v, &detail, &detail_len);
    CHECK(err == NULL && detail != NULL && strlen(detail) == detail_len, "detail");
    fmr_string_free(detail);
    detail = NULL;
    err = fmr_verify("2", 1, "3", 1, false, NULL, 0, &v, &detail, NULL);
    CHECK(err == NULL && detail != NULL && strlen(detail) > 0, "detail without its length");
    fmr_string_free(detail);
    err = fmr_verify("2", 1, "2", 1, false, "{\"tolerance\": 1}", 16, &v, NULL, NULL);
    CHECK(err != NULL && fmr_error_code(err) == FMR_ERR_INVALID_CONFIG, "unknown option key");
    fmr_error_free(err);
    const char bad[] = {'1', (char)0xff};
    err = fmr_verify("1", 1, bad, sizeof bad, false, NULL, 0, &v, NULL, NULL);
    CHECK(err != NULL && fmr_error_code(err) == FMR_ERR_INVALID_UTF8, "invalid UTF-8");
    fmr_error_free(err);

    /* Rewards: format + cosine + length, weights 1 (the paper's defaults). */
    const char *right = "\\boxed{7}</think>";     /* 17 chars, correct */
    const char *wrong = "no: \\boxed{8}</think>"; /* 21 chars, wrong */
    fmr_completion cs[2] = {{sizeof(fmr_completion), right, strlen(right), 5},
                            {sizeof(fmr_completion), wrong, strlen(wrong), 7}};
    fmr_reward_scores sc[2] = {{.struct_size = sizeof(fmr_reward_scores)}, {.struct_size = sizeof(fmr_reward_scores)}};
    err = fmr_score_group("7", 1, cs, 2, NULL, 0, sc);
    CHECK(err == NULL, "score_group: %s", fmr_error_message(err, NULL));
    fmr_error_free(err);
    double cos1 = 0.1 + 0.45 * (1.0 + cos(pi * 17.0 / 30000.0));
    double cos2 = -0.1 - 0.45 * (1.0 + cos(pi * 21.0 / 30000.0));
    CHECK(sc[0].correct && !sc[1].correct, "correctness");
    CHECK(close_to(sc[0].format, 1.0) && close_to(sc[1].format, 1.0), "format");
    CHECK(close_to(sc[0].cosine, cos1), "cosine right %.12f vs %.12f", sc[0].cosine, cos1);
    CHECK(close_to(sc[1].cosine, cos2), "cosine wrong %.12f vs %.12f", sc[1].cosine, cos2);
    CHECK(close_to(sc[0].length, 0.5) && close_to(sc[1].length, -0.5), "length %f %f", sc[0].length, sc[1].length);
    CHECK(close_to(sc[0].total, 1.0 + cos1 + 0.5), "total right %f", sc[0].total);
    CHECK(close_to(sc[1].total, 1.0 + cos2 - 0.5), "total wrong %f", sc[1].total);

    /* Token lengths and a weight change through JSON. */
    const char *cfg = "{\"length_unit\": \"tokens\", \"weights\": {\"format\": 0, \"cosine\": 0, \"length\": 0, \"accuracy\": 2}}";
    err = fmr_score_group("7", 1, cs, 2, cfg, strlen(cfg), sc);
    CHECK(err == NULL, "score_group cfg: %s", fmr_error_message(err, NULL));
    fmr_error_free(err);
    CHECK(close_to(sc[0].total, 2.0) && close_to(sc[1].total, 0.0), "accuracy weights %f %f", sc[0].total, sc[1].total);
    /* The length terms beyond the paper, by hand: tokens 5 (right) and 7 (wrong).
     * ShorterBetter: target = the shortest correct length, 5: 0 and -0.1 * |7 - 5| = -0.2.
     * Laser: one group half right (the medium bucket), target 5: 1 for the right one, 0.
     * Overlong, max_len 8, cache 4 (ramp from 4): (4 - 5) / 4 = -0.25 and (4 - 7) / 4 = -0.75. */
    const char *beyond = "{\"length_unit\": \"tokens\", \"weights\": {\"format\": 0, \"cosine\": 0, \"length\": 0, "
                         "\"accuracy\": 0, \"shorter_better\": 1, \"laser\": 0.5, \"overlong\": 1}, "
                         "\"shorter_better\": {\"beta\": 0.1}, \"overlong\": {\"max_len\": 8, \"cache\": 4}}";
    err = fmr_score_group("7", 1, cs, 2, beyond, strlen(beyond), sc);
    CHECK(err == NULL, "score_group beyond: %s", fmr_error_message(err, NULL));
    fmr_error_free(err);
    CHECK(close_to(sc[0].shorter_better, 0.0) && close_to(sc[1].shorter_better, -0.2), "shorter_better %f %f",
          sc[0].shorter_better, sc[1].shorter_better);
    CHECK(close_to(sc[0].laser, 1.0) && close_to(sc[1].laser, 0.0), "laser %f %f", sc[0].laser, sc[1].laser);
    CHECK(close_to(sc[0].overlong, -0.25) && close_to(sc[1].overlong, -0.75), "overlong %f %f", sc[0].overlong,
          sc[1].overlong);
    CHECK(close_to(sc[0].total, 0.5 - 0.25) && close_to(sc[1].total, -0.2 - 0.75), "beyond totals %f %f", sc[0].total,
          sc[1].total);

    /* A host built before the length terms were appended: its elements (and stride) end at
     * `reason`. It gets the fields it knows, and nothing is written past its array. */
    enum { V1 = offsetof(fmr_reward_scores, shorter_better) };
    _Alignas(8) unsigned char old[2 * V1 + 16];
    memset(old, 0xab, sizeof old);
    for (int i = 0; i < 2; i++) {
        uint32_t size = V1;
        memcpy(old + i * V1, &size, sizeof size);
    }
    err = fmr_score_group("7", 1, cs, 2, beyond, strlen(beyond), (fmr_reward_scores *)(void *)old);
    CHECK(err == NULL, "score_group, older struct_size: %s", fmr_error_message(err, NULL));
    fmr_error_free(err);
    double old_total;
    memcpy(&old_total, old + V1 + offsetof(fmr_reward_scores, total), sizeof old_total);
    CHECK(close_to(old_total, -0.95), "older struct_size total %f", old_total);
    int untouched = 1;
    for (size_t i = 2 * V1; i < sizeof old; i++)
        untouched &= old[i] == 0xab;
    CHECK(untouched, "nothing written past an older host's array");

    err = fmr_score_group("7", 1, cs, 2, "{\"weight\": 1}", 13, sc);
    CHECK(err != NULL && fmr_error_code(err) == FMR_ERR_INVALID_CONFIG, "unknown config key");
    fmr_error_free(err);
    err = fmr_score_group("7", 1, NULL, 2, NULL, 0, sc);
    CHECK(err != NULL && fmr_error_code(err) == FMR_ERR_INVALID_ARGUMENT, "NULL completions");
    fmr_error_free(err);
    /* Every element carries the array's stride: a missing struct_size is an error, and nothing is
     * written. */
    sc[0].total = 42.0;
    sc[1].struct_size = 0;
    err = fmr_score_group("7", 1, cs, 2, NULL, 0, sc);
    CHECK(err != NULL && fmr_error_code(err) == FMR_ERR_INVALID_ARGUMENT && sc[0].total == 42.0,
          "scores[1] without struct_size");
    fmr_error_free(err);

    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
