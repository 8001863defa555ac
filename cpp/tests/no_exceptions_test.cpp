// no_exceptions_test.cpp: fmr.hpp built with -fno-exceptions and FMR_NO_EXCEPTIONS.
// `./no_exceptions_test MODEL.gguf` uses the layer without errors (exit 0); with a second
// argument `fail` it makes a failing call: the handler sees the error, then the program aborts.
#include "fmr.hpp"

#include <cstdio>
#include <cstring>

static void report(const fmr::Error &e) {
    std::printf("handler: code %u: %s\n", static_cast<unsigned>(e.code()), e.what());
    std::fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf [fail]\n", argv[0]);
        return 2;
    }
    fmr::set_error_handler(report);
    if (argc > 2 && std::strcmp(argv[2], "fail") == 0) {
        fmr::Model missing("/no/such/model.gguf");
        std::printf("not reached\n");
        return 0;
    }
    int failures = 0;
    fmr::Model model(argv[1]);
    fmr_generator_params gp = fmr::generator_params();
    gp.n_ctx = 512;
    gp.n_seq_max = 2;
    gp.n_threads = 2;
    fmr::Generator gen(model, gp);
    std::string streamed;
    fmr::Result r = gen.solve("What is 3 + 4?", R"({"n_samples": 2, "max_tokens": 16})", [&](const fmr::TokenEvent &t) {
        if (t.sample == 0) {
            streamed += t.piece;
        }
        return true;
    });
    failures += r.size() != 2 || r.sample(0).text != streamed;
    failures += !fmr::verify("1/2", "0.5").equivalent;
    failures += fmr::score_group("7", {{"\\boxed{7}</think>", 5}}).size() != 1;
    std::printf("no-exceptions layer: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
