/* corrupt_models.c: loads each model file given on the command line through the C ABI and, when
 * it loads, solves one short problem with it. Prints one line per file to stdout:
 *   <file> load <code> <message>     the load failed
 *   <file> solve <code> <message>    the model loaded, solving failed
 *   <file> ok                        both succeeded
 * Nothing else may appear on stdout or stderr: the library prints nothing of its own. Exits 0
 * when every file was handled (errors are expected), so a crash or abort is the only failure. */
#include "fmr.h"

#include <stdio.h>
#include <string.h>

static void print_error(const char *file, const char *what, fmr_error *err) {
    size_t len = 0;
    const char *msg = fmr_error_message(err, &len);
    printf("%s %s %u %.*s\n", file, what, (unsigned)fmr_error_code(err), (int)len, msg);
    fmr_error_free(err);
}

int main(int argc, char **argv) {
    const char *problem = "What is 2 + 3?";
    const char *params = "{\"n_samples\": 2, \"max_tokens\": 4}";
    for (int i = 1; i < argc; i++) {
        const char *path = argv[i];
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        fmr_model_params mp;
        fmr_model_params_init(&mp, sizeof mp);
        fmr_model *model = NULL;
        fmr_error *err = fmr_model_load(path, strlen(path), &mp, &model);
        if (err != NULL) {
            print_error(name, "load", err);
            continue;
        }
        fmr_generator_params gp;
        fmr_generator_params_init(&gp, sizeof gp);
        gp.n_ctx = 512;
        gp.n_seq_max = 2;
        gp.n_threads = 1;
        fmr_generator *gen = NULL;
        err = fmr_generator_new(model, &gp, &gen);
        fmr_model_free(model);
        if (err != NULL) {
            print_error(name, "generator", err);
            continue;
        }
        fmr_result *result = NULL;
        err = fmr_generator_solve(gen, problem, strlen(problem), params, strlen(params), NULL, &result);
        if (err != NULL) {
            print_error(name, "solve", err);
        } else {
            printf("%s ok\n", name);
            fmr_result_free(result);
        }
        fmr_generator_free(gen);
    }
    return 0;
}
