// The generated header compiles as C++ (extern "C" linkage) with warnings as errors.
#include "fmr.h"

#include <cstdio>

int main() {
    static_assert(FMR_VERSION_MAJOR >= 0, "version macro");
    fmr_model_params p = fmr_model_default_params();
    std::printf("fmr %s, model params v%u\n", fmr_version(), p.struct_size);
    return fmr_version_number() == FMR_VERSION_MAJOR * 10000u + FMR_VERSION_MINOR * 100u + FMR_VERSION_PATCH ? 0 : 1;
}
