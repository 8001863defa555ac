/* expect.h: checks shared by the C error tests. Each test file includes it once; `failures`
 * counts failed checks (exit with it from main).
 */
#ifndef FMR_TEST_EXPECT_H
#define FMR_TEST_EXPECT_H

#include "fmr.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;

/* Expects `err` to be an error with `code` and a non-empty message of the reported length;
 * frees it. */
static inline void expect_error(const char *what, fmr_error *err, fmr_error_code_t code) {
    if (err == NULL) {
        fprintf(stderr, "FAIL %s: expected error %u, got success\n", what, (unsigned)code);
        failures++;
        return;
    }
    size_t len = 0;
    const char *msg = fmr_error_message(err, &len);
    if (fmr_error_code(err) != code || len == 0 || strlen(msg) != len) {
        fprintf(stderr, "FAIL %s: got code %u (%s), expected %u\n", what, (unsigned)fmr_error_code(err), msg,
                (unsigned)code);
        failures++;
    } else {
        printf("ok   %s: %s\n", what, msg);
    }
    fmr_error_free(err);
}

/* Expects success (`err == NULL`); otherwise reports and frees the error. */
static inline void expect_ok(const char *what, fmr_error *err) {
    if (err != NULL) {
        fprintf(stderr, "FAIL %s: %s\n", what, fmr_error_message(err, NULL));
        fmr_error_free(err);
        failures++;
    }
}

#endif
