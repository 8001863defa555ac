// fmr_hpp_test.cpp: the C++ layer (include/fmr.hpp) on the default model: RAII handles,
// exceptions with codes, exceptions from callbacks rethrown as they were thrown, the vote list,
// the verifier and rewards, and the trainer's reward swap.
// Usage: ./fmr_hpp_test MODEL.gguf TRAIN.jsonl OUT_DIR    (exit 0 = all checks passed)
#include "fmr.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

static int failures = 0;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            std::fprintf(stderr, "FAIL line %d: ", __LINE__);                                                \
            std::fprintf(stderr, __VA_ARGS__);                                                               \
            std::fprintf(stderr, "\n");                                                                      \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/// An exception type of the host's own, to see that it comes back unchanged.
struct HostError : std::runtime_error {
    explicit HostError(const char *what) : std::runtime_error(what) {}
};

template <typename F> static fmr_error_code_t code_of(F &&f) {
    try {
        f();
    } catch (const fmr::Error &e) {
        return e.code();
    }
    return 0;
}

static void generation(const char *model_path) {
    CHECK(code_of([] { fmr::Model missing("/no/such/model.gguf"); }) == FMR_ERR_MODEL_LOAD, "missing model");
    fmr::Model model(model_path);
    CHECK(!model.tokenize("Hello world").empty() && model.n_vocab() > 0, "tokenize");
    fmr_generator_params gp = fmr::generator_params();
    gp.n_ctx = 1024;
    gp.n_seq_max = 4;
    gp.n_threads = 2;
    fmr::Generator gen(model, gp);
    CHECK(code_of([&] { gen.solve("2+2?", R"({"bogus": 1})"); }) == FMR_ERR_INVALID_CONFIG, "unknown key");

    // Streaming: the pieces of each sample joined are its text.
    std::string streamed[2];
    std::vector<float> streamed_conf[2];
    size_t forced = 0;
    bool top_ok = true;
    fmr::Result r = gen.solve("What is 3 + 4?", R"({"n_samples": 2, "max_tokens": 24})", [&](const fmr::TokenEvent &t) {
        streamed[t.sample] += t.piece;
        streamed_conf[t.sample].push_back(t.confidence);
        forced += t.forced;
        top_ok = top_ok && t.top_k == 20 && t.top_tokens != nullptr && t.top_logprobs[0] <= 0;
        return true;
    });
    CHECK(r.size() == 2, "samples %zu", r.size());
    for (size_t i = 0; i < r.size(); i++) {
        fmr::Sample s = r.sample(i);
        CHECK(s.text == streamed[i], "sample %zu stream", i);
        CHECK(s.tokens.size() == s.logprobs.size() && !s.tokens.empty(), "tokens");
        CHECK(s.has_answer == !s.answer_key.empty() && s.has_answer == !s.answer_display.empty(), "answer forms");
        // Confidence on by default: one per token, as streamed, and the sample's summaries.
        CHECK(s.confidence.size() == s.tokens.size() && s.has_confidence && s.confidence_mean > 0, "confidence");
        CHECK(s.confidence.size() >= streamed_conf[i].size() && s.n_probes == 0 && s.probe_tokens == 0, "conf stream");
        for (size_t k = 0; k < streamed_conf[i].size(); k++) {
            CHECK(streamed_conf[i][k] == s.confidence[k], "sample %zu token %zu confidence", i, k);
        }
    }
    CHECK(top_ok, "top-k of every streamed token");
    CHECK(forced == 0, "no budget forcing asked for");
    // The vote list: counts add up to at most the samples, each key belongs to a sample.
    std::vector<fmr::Vote> votes = r.votes();
    size_t counted = 0;
    for (const fmr::Vote &v : votes) {
        counted += v.count;
        bool found = false;
        for (size_t i = 0; i < r.size(); i++) {
            fmr::Sample s = r.sample(i);
            found = found || (s.answer_key == v.key && s.answer_display == v.display);
        }
        CHECK(found && v.count > 0 && v.weight == static_cast<double>(v.count), "vote %s", v.key.c_str());
    }
    CHECK(counted <= r.size(), "vote counts");
    CHECK(r.voted().has_value() == !votes.empty(), "voted");
    CHECK(r.stats().tokens_generated > 0 && r.to_json().find("\"answer_display\"") != std::string::npos, "json");

    // An exception in the token callback cancels the rollout and comes back unchanged.
    try {
        gen.solve("What is 3 + 4?", R"({"n_samples": 2, "max_tokens": 24})",
                  [](const fmr::TokenEvent &) -> bool { throw HostError("from the stream"); });
        CHECK(false, "the callback's exception was swallowed");
    } catch (const HostError &e) {
        CHECK(std::string(e.what()) == "from the stream", "what");
    }
    // A callback returning false is a cancel, not an error.
    fmr::Result c = gen.solve("What is 3 + 4?", R"({"n_samples": 2, "max_tokens": 24})",
                              [](const fmr::TokenEvent &) { return false; });
    CHECK(c.stats().cancelled, "false cancels");
    // A deadline through SolveOptions.
    fmr::SolveOptions o;
    o.params_json = R"({"n_samples": 2, "max_tokens": 200})";
    o.deadline = std::chrono::milliseconds(1);
    fmr::Result d = gen.solve("Count from 1 to 1000.", o);
    for (size_t i = 0; i < d.size(); i++) {
        CHECK(d.sample(i).finish_reason == FMR_FINISH_DEADLINE, "deadline: %u", d.sample(i).finish_reason);
    }
    // A cancel flag set before the call.
    fmr::CancelFlag flag;
    flag.cancel();
    CHECK(gen.solve("2+2?", R"({"n_samples": 2, "max_tokens": 8})", {}, &flag).stats().cancelled && flag.is_set(),
          "flag");
}

static void verification() {
    fmr::Verdict v = fmr::verify("1/2", "0.5");
    CHECK(v.equivalent && v.reason == FMR_VERDICT_NUMERIC_EXACT && !v.detail.empty(), "verify");
    v = fmr::verify("\\frac{1}{2}", "<think>half</think> \\boxed{\\dfrac12}", true);
    CHECK(v.equivalent, "completion");
    CHECK(code_of([] { fmr::verify("1", "1", false, R"({"tolerance": 1})"); }) == FMR_ERR_INVALID_CONFIG, "options");
    const double pi = 3.14159265358979323846;
    std::vector<fmr::RewardScores> s =
        fmr::score_group("7", {{"\\boxed{7}</think>", 5}, {"no: \\boxed{8}</think>", 7}});
    double cos1 = 0.1 + 0.45 * (1.0 + std::cos(pi * 17.0 / 30000.0));
    double cos2 = -0.1 - 0.45 * (1.0 + std::cos(pi * 21.0 / 30000.0));
    CHECK(s.size() == 2 && s[0].correct && !s[1].correct, "correct");
    CHECK(std::fabs(s[0].total - (1.0 + cos1 + 0.5)) < 1e-9 && std::fabs(s[1].total - (1.0 + cos2 - 0.5)) < 1e-9,
          "totals %f %f", s[0].total, s[1].total);
    CHECK(fmr::score_group("7", {}).empty(), "empty group");
    // The length terms beyond the paper (tokens 5 right, 7 wrong; hand-computed in verify_rewards.c).
    s = fmr::score_group("7", {{"\\boxed{7}</think>", 5}, {"no: \\boxed{8}</think>", 7}},
                         R"({"length_unit": "tokens", "shorter_better": {"beta": 0.1}, "overlong": {"max_len": 8, "cache": 4}})");
    CHECK(std::fabs(s[1].shorter_better + 0.2) < 1e-9 && s[0].laser == 1.0 && s[1].laser == 0.0 &&
              std::fabs(s[0].overlong + 0.25) < 1e-9 && std::fabs(s[1].overlong + 0.75) < 1e-9,
          "length terms %f %f %f", s[1].shorter_better, s[0].laser, s[1].overlong);
}

static void training(const char *model_path, const char *data, const std::string &out) {
    auto config = [&](const char *sub) {
        return std::string(R"({"preset": "small", "model": ")") + model_path + R"(", "out_dir": ")" + out + sub +
               R"(", "threads": 2, "max_steps": 2, "data": {"train": ")" + data +
               R"("}, "lora": {"rank": 2, "alpha": 4, "targets": ["q"]}, "sft": {"batch_size": 2, "max_seq_len": 128}, "grpo": {"prompts_per_step": 1, "generations": 2, "max_completion_tokens": 8}})";
    };
    fmr::Trainer sft(config("/sft"), FMR_STAGE_SFT);
    std::string m = sft.step();
    CHECK(m.find("\"step\":1") != std::string::npos && sft.steps() == 1, "SFT step: %s", m.c_str());

    fmr::Trainer grpo(config("/grpo"), FMR_STAGE_GRPO);
    const char *batch = R"([{"problem": "What is 1 + 1?", "answer": "2"}])";
    // A throwing reward fails the step (nothing changes) and its exception comes back as thrown.
    grpo.set_reward([](std::string_view, std::string_view, std::string_view, size_t) -> double {
        throw HostError("host reward");
    }, 1.0);
    try {
        grpo.step(batch);
        CHECK(false, "throwing reward did not fail the step");
    } catch (const HostError &e) {
        CHECK(std::string(e.what()) == "host reward" && grpo.steps() == 0, "reward exception");
    }
    // A rejected set_reward keeps the reward the trainer had (it must stay callable).
    int calls = 0;
    grpo.set_reward([&](std::string_view, std::string_view answer, std::string_view, size_t) -> double {
        calls++;
        return answer == "2" ? 1.0 : 0.0;
    }, 0.5);
    CHECK(code_of([&] { grpo.set_reward([](std::string_view, std::string_view, std::string_view, size_t) { return 0.0; },
                                        std::nan("")); }) == FMR_ERR_INVALID_ARGUMENT,
          "NaN weight");
    m = grpo.step(batch);
    CHECK(calls == 2 && grpo.steps() == 1 && m.find("\"reward_custom\"") != std::string::npos, "kept reward: %d calls",
          calls);
    // An exception in the progress callback stops the run after that step and comes back.
    try {
        grpo.run([](std::string_view) -> bool { throw HostError("from progress"); });
        CHECK(false, "progress exception swallowed");
    } catch (const HostError &e) {
        CHECK(std::string(e.what()) == "from progress" && grpo.steps() == 2, "progress: %llu steps",
              static_cast<unsigned long long>(grpo.steps()));
    }
    grpo.clear_reward();
    grpo.save_adapter(out + "/grpo/adapter-cpp.gguf", FMR_ADAPTER_GGUF);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s MODEL.gguf TRAIN.jsonl OUT_DIR\n", argv[0]);
        return 2;
    }
    try {
        generation(argv[1]);
        verification();
        training(argv[1], argv[2], argv[3]);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "FAIL: uncaught %s\n", e.what());
        failures++;
    }
    std::printf("fmr %s C++ layer: %d failures\n", fmr::version().c_str(), failures);
    return failures == 0 ? 0 : 1;
}
