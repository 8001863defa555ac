// The generated header compiles as C++ (extern "C" linkage) with warnings as errors, and its
// version macros agree with the library.
#include "fmr.h"

#include <cstdio>
#include <cstring>

int main() {
    static_assert(FMR_VERSION_NUMBER == FMR_VERSION_MAJOR * 10000 + FMR_VERSION_MINOR * 100 + FMR_VERSION_PATCH,
                  "version macros");
    fmr_model_params p{};
    fmr_model_params_init(&p, sizeof p);
    std::printf("fmr %s (header %s), model params of %u bytes\n", fmr_version(), FMR_VERSION, p.struct_size);
    bool same = fmr_version_number() == FMR_VERSION_NUMBER && std::strcmp(fmr_version(), FMR_VERSION) == 0;
    return same && p.struct_size == sizeof p && p.use_mmap ? 0 : 1;
}
