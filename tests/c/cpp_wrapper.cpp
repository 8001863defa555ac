// The C++ layer: RAII handles, exceptions with codes, streaming through std::function.
#include "fmr.hpp"

#include <cstdio>
#include <string>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    int failures = 0;
    try {
        fmr::Model missing("/no/such/model.gguf");
        std::fprintf(stderr, "FAIL: missing model loaded\n");
        failures++;
    } catch (const fmr::Error &e) {
        if (e.code() != FMR_ERR_MODEL_LOAD) {
            std::fprintf(stderr, "FAIL: code %u\n", static_cast<unsigned>(e.code()));
            failures++;
        }
    }
    fmr::Model model(argv[1]);
    if (model.tokenize("Hello world").empty() || model.n_vocab() == 0) {
        std::fprintf(stderr, "FAIL: tokenize\n");
        failures++;
    }
    fmr_generator_params gp = fmr_generator_default_params();
    gp.n_ctx = 1024;
    gp.n_seq_max = 4;
    gp.n_threads = 2;
    fmr::Generator gen(model, gp);
    try {
        gen.solve("2+2?", "{\"bogus\": 1}");
        failures++;
    } catch (const fmr::Error &e) {
        if (e.code() != FMR_ERR_INVALID_CONFIG) {
            failures++;
        }
    }
    std::string streamed;
    fmr::Result r = gen.solve("What is 3 + 4?", R"({"n_samples": 2, "max_tokens": 24})",
                              [&](uint32_t sample, std::string_view piece) {
                                  if (sample == 0) {
                                      streamed += piece;
                                  }
                                  return true;
                              });
    if (r.size() != 2 || r.sample(0).text != streamed || r.sample(0).tokens.size() != r.sample(0).logprobs.size()) {
        std::fprintf(stderr, "FAIL: result/stream mismatch\n");
        failures++;
    }
    // An exception inside the callback cancels instead of crossing the C boundary.
    fmr::Result c = gen.solve("What is 3 + 4?", R"({"n_samples": 2, "max_tokens": 24})",
                              [](uint32_t, std::string_view) -> bool { throw std::runtime_error("x"); });
    if (!c.stats().cancelled) {
        std::fprintf(stderr, "FAIL: callback exception did not cancel\n");
        failures++;
    }
    if (argc >= 4) {
        // Trainer: one SFT step on the fixture rows, a failing host reward in GRPO.
        auto config = [&](const char *sub) {
            return std::string(R"({"preset": "small", "model": ")") + argv[1] + R"(", "out_dir": ")" +
                   argv[3] + sub + R"(", "threads": 2, "data": {"train": ")" + argv[2] +
                          R"("}, "lora": {"rank": 2, "alpha": 4, "targets": ["q"]}, "sft": {"batch_size": 2, "max_seq_len": 128}, "grpo": {"prompts_per_step": 1, "generations": 2, "max_completion_tokens": 8}})";
        };
        fmr::Trainer sft(config("/sft"), FMR_STAGE_SFT);
        std::string m = sft.step();
        if (m.find("\"step\":1") == std::string::npos || sft.steps() != 1) {
            std::fprintf(stderr, "FAIL: SFT step: %s\n", m.c_str());
            failures++;
        }
        fmr::Trainer grpo(config("/grpo"), FMR_STAGE_GRPO);
        grpo.set_reward([](std::string_view, std::string_view, std::string_view, size_t) -> double {
            throw std::runtime_error("host failure");
        }, 1.0);
        try {
            grpo.step(R"([{"problem": "What is 1 + 1?", "answer": "2"}])");
            std::fprintf(stderr, "FAIL: throwing reward did not fail the step\n");
            failures++;
        } catch (const fmr::Error &) {
            if (grpo.steps() != 0) {
                failures++;
            }
        }
    }
    std::printf("fmr %s C++ layer: %d failures, json %zu bytes\n", fmr::version().c_str(), failures,
                r.to_json().size());
    return failures == 0 ? 0 : 1;
}
