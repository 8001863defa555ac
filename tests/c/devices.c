/* devices.c: the device list, the CPU variant, and GPU placement errors through the C ABI.
 * Usage: devices MODEL.gguf. Prints one line per check ("ok ..." or "FAIL ...") and the device
 * list; exits 1 when a check fails. Run where no GPU is lent. */
#include "fmr.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    failures += !ok;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        return 2;
    }
    size_t n = fmr_device_count();
    check(n >= 1, "at least one device");
    int cpus = 0, gpus = 0;
    for (size_t i = 0; i < n; i++) {
        fmr_device_info d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        fmr_error *err = fmr_device_get(i, &d);
        check(err == NULL, "device info");
        if (err != NULL) {
            fmr_error_free(err);
            continue;
        }
        printf("device %zu: %s (%s) backend %s, %llu of %llu MiB free\n", i, d.name, d.description, d.backend,
               (unsigned long long)(d.memory_free >> 20), (unsigned long long)(d.memory_total >> 20));
        cpus += d.kind == FMR_DEVICE_CPU;
        gpus += d.kind == FMR_DEVICE_GPU;
    }
    check(cpus == 1 && gpus == 0, "one CPU, no GPU");
    fmr_device_info bad;
    memset(&bad, 0, sizeof bad);
    bad.struct_size = sizeof bad;
    fmr_error *err = fmr_device_get(n, &bad);
    check(err != NULL && fmr_error_code(err) == FMR_ERR_OUT_OF_RANGE, "index past the list");
    fmr_error_free(err);
    const char *variant = fmr_cpu_variant();
    printf("cpu variant: %s\n", variant);
    check(variant != NULL && strstr(variant, "AVX2") != NULL, "CPU variant with its features");

    fmr_model_params mp;
    fmr_model_params_init(&mp, sizeof mp);
    mp.n_gpu_layers = -1;
    fmr_model *model = NULL;
    err = fmr_model_load(argv[1], strlen(argv[1]), &mp, &model);
    check(err != NULL && fmr_error_code(err) == FMR_ERR_UNSUPPORTED, "GPU layers without a GPU");
    fmr_error_free(err);
    mp.split_mode = 9;
    err = fmr_model_load(argv[1], strlen(argv[1]), &mp, &model);
    check(err != NULL && fmr_error_code(err) == FMR_ERR_INVALID_ARGUMENT, "unknown split mode");
    fmr_error_free(err);
    mp.split_mode = FMR_SPLIT_NONE;
    mp.cpu_fallback = true;
    err = fmr_model_load(argv[1], strlen(argv[1]), &mp, &model);
    check(err == NULL, "CPU fallback loads");
    if (err == NULL) {
        const char *why = NULL;
        size_t len = 0;
        fmr_error_free(fmr_model_fallback(model, &why, &len));
        check(why != NULL && len == strlen(why), "the fallback says why");
        if (why != NULL) {
            printf("fallback: %s\n", why);
        }
        fmr_model_free(model);
    } else {
        fmr_error_free(err);
    }
    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
