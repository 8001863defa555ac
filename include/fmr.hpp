// fmr.hpp: header-only C++17 layer over the fmr C ABI (include/fmr.h).
//
// Move-only RAII handles; errors become fmr::Error exceptions. Define FMR_NO_EXCEPTIONS to get
// std::abort() with the message on stderr instead (for builds without exceptions).
// Thread safety is the C ABI's: const objects may be shared between threads, others may not.
#ifndef FMR_HPP
#define FMR_HPP

#include "fmr.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fmr {

/// An error from the library: code (FMR_ERR_*) and message.
class Error : public std::runtime_error {
  public:
    Error(fmr_error_code_t code, const std::string &message) : std::runtime_error(message), code_(code) {}
    fmr_error_code_t code() const noexcept { return code_; }

  private:
    fmr_error_code_t code_;
};

namespace detail {
/// Takes ownership of `err`; throws (or aborts) when it is not NULL.
inline void check(fmr_error *err) {
    if (err == nullptr) {
        return;
    }
    size_t len = 0;
    const char *msg = fmr_error_message(err, &len);
    std::string message(msg, len);
    fmr_error_code_t code = fmr_error_code(err);
    fmr_error_free(err);
#ifdef FMR_NO_EXCEPTIONS
    std::fprintf(stderr, "fmr error %u: %s\n", static_cast<unsigned>(code), message.c_str());
    std::abort();
#else
    throw Error(code, message);
#endif
}

template <typename T, void (*Free)(T *)> struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
} // namespace detail

/// Library version string ("MAJOR.MINOR.PATCH").
inline std::string version() { return fmr_version(); }

/// A loaded GGUF model.
class Model {
  public:
    explicit Model(std::string_view path, fmr_model_params params = fmr_model_default_params()) {
        fmr_model *raw = nullptr;
        detail::check(fmr_model_load(path.data(), path.size(), &params, &raw));
        handle_.reset(raw);
    }
    std::vector<int32_t> tokenize(std::string_view text, bool add_special = false) const {
        size_t needed = 0;
        detail::check(fmr_model_tokenize(handle_.get(), text.data(), text.size(), add_special, nullptr, 0, &needed));
        std::vector<int32_t> out(needed);
        size_t got = 0;
        detail::check(fmr_model_tokenize(handle_.get(), text.data(), text.size(), add_special, out.data(), out.size(), &got));
        out.resize(got);
        return out;
    }
    size_t n_vocab() const noexcept { return fmr_model_n_vocab(handle_.get()); }
    const fmr_model *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<fmr_model, detail::Deleter<fmr_model, fmr_model_free>> handle_;
};

/// One sample of a result.
struct Sample {
    std::string text;
    std::string answer; ///< empty when none was extracted
    bool has_answer = false;
    fmr_finish_reason finish_reason = 0;
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;
};

/// The outcome of one group rollout.
class Result {
  public:
    explicit Result(fmr_result *raw) : handle_(raw) {}
    size_t size() const noexcept { return fmr_result_n_samples(handle_.get()); }
    Sample sample(size_t i) const {
        Sample s;
        const char *text = nullptr;
        size_t len = 0;
        detail::check(fmr_result_sample_text(handle_.get(), i, &text, &len));
        s.text.assign(text, len);
        detail::check(fmr_result_sample_answer(handle_.get(), i, &text, &len));
        s.has_answer = text != nullptr;
        if (text != nullptr) {
            s.answer.assign(text, len);
        }
        fmr_sample_info info{};
        detail::check(fmr_result_sample_info(handle_.get(), i, &info));
        s.finish_reason = info.finish_reason;
        const int32_t *toks = nullptr;
        const float *lps = nullptr;
        size_t n = 0;
        detail::check(fmr_result_sample_tokens(handle_.get(), i, &toks, &lps, &n));
        s.tokens.assign(toks, toks + n);
        s.logprobs.assign(lps, lps + n);
        return s;
    }
    /// The winning answer and its votes; {"", 0} when no sample gave an answer.
    std::pair<std::string, size_t> vote() const {
        if (fmr_result_n_votes(handle_.get()) == 0) {
            return {"", 0};
        }
        const char *text = nullptr;
        size_t len = 0, count = 0;
        detail::check(fmr_result_vote(handle_.get(), 0, &text, &len, &count));
        return {std::string(text, len), count};
    }
    fmr_group_stats stats() const {
        fmr_group_stats s{};
        detail::check(fmr_result_stats(handle_.get(), &s));
        return s;
    }
    std::string to_json() const {
        char *json = nullptr;
        size_t len = 0;
        detail::check(fmr_result_to_json(handle_.get(), &json, &len));
        std::string out(json, len);
        fmr_string_free(json, len);
        return out;
    }

  private:
    std::unique_ptr<fmr_result, detail::Deleter<fmr_result, fmr_result_free>> handle_;
};

/// A cancellation flag; cancel() may be called from any thread.
class CancelFlag {
  public:
    CancelFlag() : handle_(fmr_cancel_flag_new()) {}
    void cancel() const noexcept { fmr_cancel_flag_set(handle_.get()); }
    void reset() const noexcept { fmr_cancel_flag_reset(handle_.get()); }
    const fmr_cancel_flag *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<fmr_cancel_flag, detail::Deleter<fmr_cancel_flag, fmr_cancel_flag_free>> handle_;
};

/// Streaming callback: (sample index, token bytes) -> keep going?
using TokenCallback = std::function<bool(uint32_t sample, std::string_view piece)>;

/// Group rollouts on one model; one call at a time.
class Generator {
  public:
    Generator(const Model &model, fmr_generator_params params = fmr_generator_default_params()) {
        fmr_generator *raw = nullptr;
        detail::check(fmr_generator_new(model.get(), &params, &raw));
        handle_.reset(raw);
    }
    /// Solves one problem; `params_json` as documented for fmr_generator_solve.
    Result solve(std::string_view problem, std::string_view params_json = {}, TokenCallback on_token = {},
                 const CancelFlag *cancel = nullptr) {
        fmr_rollout_hooks hooks = fmr_rollout_hooks_default();
        if (on_token) {
            hooks.on_token = &Generator::trampoline;
            hooks.user_data = &on_token;
        }
        if (cancel != nullptr) {
            hooks.cancel = cancel->get();
        }
        fmr_result *raw = nullptr;
        detail::check(fmr_generator_solve(handle_.get(), problem.data(), problem.size(), params_json.data(),
                                          params_json.size(), &hooks, &raw));
        return Result(raw);
    }

  private:
    static bool trampoline(const fmr_token_event *ev, void *user_data) {
        auto *cb = static_cast<TokenCallback *>(user_data);
        try {
            return (*cb)(ev->sample, std::string_view(ev->piece, ev->piece_len));
        } catch (...) {
            return false; // never let an exception cross the C boundary; cancel instead
        }
    }
    std::unique_ptr<fmr_generator, detail::Deleter<fmr_generator, fmr_generator_free>> handle_;
};

/// Host reward: (problem, gold answer, completion, completion tokens) -> reward.
using RewardCallback =
    std::function<double(std::string_view problem, std::string_view answer, std::string_view completion,
                         size_t completion_tokens)>;
/// Progress of Trainer::run: one step's metrics as JSON -> keep going?
using ProgressCallback = std::function<bool(std::string_view metrics_json)>;

/// The SFT or GRPO loop of the recipe; one call at a time. Callbacks must outlive the trainer's
/// use of them (the trainer keeps the reward callback until it is replaced or destroyed).
class Trainer {
  public:
    /// `stage` is FMR_STAGE_SFT or FMR_STAGE_GRPO; `config_json` a run configuration.
    Trainer(std::string_view config_json, fmr_stage stage) {
        fmr_trainer *raw = nullptr;
        detail::check(fmr_trainer_new(config_json.data(), config_json.size(), stage, &raw));
        handle_.reset(raw);
    }
    /// Adds a host reward with `weight`; an exception inside it fails the step (no update).
    void set_reward(RewardCallback cb, double weight) {
        reward_ = std::make_unique<RewardCallback>(std::move(cb));
        detail::check(fmr_trainer_set_reward_callback(handle_.get(), &Trainer::reward_trampoline,
                                                      reward_.get(), weight));
    }
    /// One optimizer step on `batch_json` (empty: the next rows of the run's data); returns the
    /// step's metrics as JSON.
    std::string step(std::string_view batch_json = {}, const CancelFlag *cancel = nullptr) {
        char *json = nullptr;
        size_t len = 0;
        detail::check(fmr_trainer_step(handle_.get(), batch_json.data(), batch_json.size(),
                                       cancel ? cancel->get() : nullptr, &json, &len));
        std::string out(json, len);
        fmr_string_free(json, len);
        return out;
    }
    /// Runs to the end of the plan; returns an FMR_RUN_* value.
    fmr_run_end run(ProgressCallback progress = {}, const CancelFlag *cancel = nullptr) {
        fmr_run_end end = 0;
        detail::check(fmr_trainer_run(handle_.get(), progress ? &Trainer::progress_trampoline : nullptr,
                                      progress ? &progress : nullptr, cancel ? cancel->get() : nullptr, &end));
        return end;
    }
    void save_adapter(std::string_view path, fmr_adapter_format format) const {
        detail::check(fmr_trainer_save_adapter(handle_.get(), path.data(), path.size(), format));
    }
    void load_adapter(std::string_view path) {
        detail::check(fmr_trainer_load_adapter(handle_.get(), path.data(), path.size()));
    }
    uint64_t steps() const noexcept { return fmr_trainer_step_count(handle_.get()); }

  private:
    static bool reward_trampoline(const fmr_reward_input *in, void *user_data, double *reward) {
        auto *cb = static_cast<RewardCallback *>(user_data);
        try {
            *reward = (*cb)(std::string_view(in->problem, in->problem_len), std::string_view(in->answer, in->answer_len),
                            std::string_view(in->completion, in->completion_len), in->completion_tokens);
            return true;
        } catch (...) {
            return false; // the step fails with an error instead of unwinding through C
        }
    }
    static bool progress_trampoline(const char *json, size_t len, void *user_data) {
        auto *cb = static_cast<ProgressCallback *>(user_data);
        try {
            return (*cb)(std::string_view(json, len));
        } catch (...) {
            return false;
        }
    }
    std::unique_ptr<RewardCallback> reward_;
    std::unique_ptr<fmr_trainer, detail::Deleter<fmr_trainer, fmr_trainer_free>> handle_;
};

} // namespace fmr

#endif // FMR_HPP
