// solve.cpp: one math problem through the C++ layer of fmr: a group of samples with early
// stopping, each sample's answer, the vote, the tokens saved. Built with CMake against an
// installed fmr (see CMakeLists.txt).
// Usage: ./solve MODEL.gguf ["problem"] ["params json"]
#include <fmr.hpp>

#include <cstdio>
#include <iostream>
#include <string>

static const char *finish_name(fmr_finish_reason r) {
    static const char *names[] = {"?", "eos", "stop", "length", "budget", "forced", "consensus", "deadline", "cancelled"};
    return r < sizeof names / sizeof names[0] ? names[r] : "?";
}

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf [problem] [params-json]\n";
        return 2;
    }
    std::string problem = argc > 2 ? argv[2]
                                   : "A box holds 6 eggs. How many eggs are in 7 boxes?";
    std::string params = argc > 3 ? argv[3]
                                   : R"({"n_samples": 4, "max_tokens": 96, "consensus": {"rule": "lossless"},)"
                                     R"( "answer": {"last_number_fallback": true}})";
    try {
        std::cout << "fmr " << fmr::version() << " (header " << FMR_VERSION << ")\n";
        fmr::Model model(argv[1]);
        fmr_generator_params gp = fmr::generator_params();
        gp.n_ctx = 2048;
        gp.n_seq_max = 8;
        gp.n_threads = 2;
        fmr::Generator generator(model, gp);
        fmr::Result result = generator.solve(problem, params);
        for (size_t i = 0; i < result.size(); i++) {
            fmr::Sample s = result.sample(i);
            std::printf("sample %zu: %zu tokens, %s, answer %s\n", i, s.tokens.size(), finish_name(s.finish_reason),
                        s.has_answer ? s.answer_display.c_str() : "none");
        }
        if (auto v = result.voted()) {
            std::printf("vote: %s (%zu of %zu)\n", v->display.c_str(), v->count, result.size());
        } else {
            std::printf("vote: none\n");
        }
        fmr_group_stats st = result.stats();
        std::printf("tokens: %zu generated, %zu without early stopping, %.2f s\n", st.tokens_generated,
                    st.tokens_fixed_budget, st.wall_seconds);
    } catch (const fmr::Error &e) {
        std::cerr << "fmr error " << e.code() << ": " << e.what() << "\n";
        return 1;
    }
    return 0;
}
