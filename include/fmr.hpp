/**
 * @file fmr.hpp
 * @brief Header-only C++17 layer over the fmr C ABI (fmr.h).
 *
 * Move-only RAII handles; errors become fmr::Error exceptions carrying the FMR_ERR_* code. An
 * exception thrown by a callback you pass (token stream, host reward, progress) is kept and
 * rethrown from the call that ran the callback, after the C call returned.
 *
 * Without exceptions (-fno-exceptions), define FMR_NO_EXCEPTIONS: a failed call then passes
 * the error to the handler set with fmr::set_error_handler (if any) and calls std::abort();
 * callbacks must not throw.
 *
 * Thread safety is the C ABI's: const member functions may be called from several threads at
 * once (Model, Result, CancelFlag::cancel, Trainer::steps); other member functions one call at
 * a time per object.
 */
#ifndef FMR_HPP
#define FMR_HPP

#include "fmr.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fmr {

/// An error from the library: a code (FMR_ERR_*) and a message.
class Error : public std::runtime_error {
  public:
    Error(fmr_error_code_t code, const std::string &message) : std::runtime_error(message), code_(code) {}
    /// The FMR_ERR_* code.
    fmr_error_code_t code() const noexcept { return code_; }

  private:
    fmr_error_code_t code_;
};

#ifdef FMR_NO_EXCEPTIONS
/// Called with the error before std::abort() when exceptions are off.
using ErrorHandler = void (*)(const Error &);
namespace detail {
inline ErrorHandler &error_handler() noexcept {
    static ErrorHandler handler = nullptr;
    return handler;
}
} // namespace detail
/// Sets the function that sees an error before the program aborts (exceptions off).
inline void set_error_handler(ErrorHandler handler) noexcept { detail::error_handler() = handler; }
#endif

namespace detail {
/// Takes ownership of `err`; throws (or aborts) when it is not NULL.
inline void check(fmr_error *err) {
    if (err == nullptr) {
        return;
    }
    size_t len = 0;
    const char *msg = fmr_error_message(err, &len);
    Error e(fmr_error_code(err), std::string(msg, len));
    fmr_error_free(err);
#ifdef FMR_NO_EXCEPTIONS
    if (error_handler() != nullptr) {
        error_handler()(e);
    }
    std::abort();
#else
    throw e;
#endif
}

#ifndef FMR_NO_EXCEPTIONS
/// Checks `err`, but first rethrows an exception a callback left in `pending` (the C error it
/// caused, if any, is released).
inline void check_after_callback(fmr_error *err, std::exception_ptr &pending) {
    if (pending) {
        fmr_error_free(err);
        std::exception_ptr e = std::exchange(pending, nullptr);
        std::rethrow_exception(e);
    }
    check(err);
}
#endif

template <typename T, void (*Free)(T *)> struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

/// A caller-allocated output struct with struct_size set.
template <typename T> T sized() noexcept {
    T value{};
    value.struct_size = static_cast<uint32_t>(sizeof(T));
    return value;
}

/// A string the library allocated, copied and released.
inline std::string take_string(char *s, size_t len) {
    std::string out(s, len);
    fmr_string_free(s);
    return out;
}
} // namespace detail

/// The library's version ("MAJOR.MINOR.PATCH"); FMR_VERSION is the header's.
inline std::string version() { return fmr_version(); }

/// Default model parameters (CPU only, mmap on).
inline fmr_model_params model_params() noexcept {
    fmr_model_params p{};
    fmr_model_params_init(&p, sizeof p);
    return p;
}

/// Default generator parameters (n_ctx 4096, n_batch 2048, 16 samples, all cores).
inline fmr_generator_params generator_params() noexcept {
    fmr_generator_params p{};
    fmr_generator_params_init(&p, sizeof p);
    return p;
}

/// A loaded GGUF model. Const members are thread-safe.
class Model {
  public:
    explicit Model(std::string_view path, const fmr_model_params &params = model_params()) {
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
    /// Whether the sample stated an answer.
    bool has_answer = false;
    /// The verifier's canonical key (`q:1/2`): for comparing answers, not for people.
    std::string answer_key;
    /// The answer as a person should read it (`1/2`).
    std::string answer_display;
    fmr_finish_reason finish_reason = 0;
    size_t n_forced_tokens = 0;
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;
    /// Each token's confidence (−mean of the step's top-k log-probabilities); empty with
    /// confidence off.
    std::vector<float> confidence;
    /// Mean, lowest-window and tail confidence (set when has_confidence).
    bool has_confidence = false;
    float confidence_mean = 0;
    float confidence_lowest_window = 0;
    float confidence_tail = 0;
    /// Answer probes taken and the tokens they decoded (apart from `tokens`).
    size_t n_probes = 0;
    size_t probe_tokens = 0;
};

/// One answer of the vote.
struct Vote {
    std::string key;     ///< canonical key, for comparing
    std::string display; ///< what a person should read
    size_t count = 0;    ///< samples that gave it
    double weight = 0;   ///< sum of their vote weights (`count` when votes are not weighted)
};

/// The outcome of one group rollout. Immutable; const members are thread-safe.
class Result {
  public:
    explicit Result(fmr_result *raw) noexcept : handle_(raw) {}
    size_t size() const noexcept { return fmr_result_n_samples(handle_.get()); }
    Sample sample(size_t i) const {
        Sample s;
        const char *text = nullptr;
        size_t len = 0;
        detail::check(fmr_result_sample_text(handle_.get(), i, &text, &len));
        s.text.assign(text, len);
        detail::check(fmr_result_sample_answer_key(handle_.get(), i, &text, &len));
        s.has_answer = text != nullptr;
        if (text != nullptr) {
            s.answer_key.assign(text, len);
        }
        detail::check(fmr_result_sample_answer_display(handle_.get(), i, &text, &len));
        if (text != nullptr) {
            s.answer_display.assign(text, len);
        }
        fmr_sample_info info = detail::sized<fmr_sample_info>();
        detail::check(fmr_result_sample_info(handle_.get(), i, &info));
        s.finish_reason = info.finish_reason;
        s.n_forced_tokens = info.n_forced_tokens;
        s.has_confidence = info.has_confidence;
        s.confidence_mean = info.confidence_mean;
        s.confidence_lowest_window = info.confidence_lowest_window;
        s.confidence_tail = info.confidence_tail;
        s.n_probes = info.n_probes;
        s.probe_tokens = info.probe_tokens;
        const int32_t *toks = nullptr;
        const float *lps = nullptr;
        size_t n = 0;
        detail::check(fmr_result_sample_tokens(handle_.get(), i, &toks, &lps, &n));
        s.tokens.assign(toks, toks + n);
        s.logprobs.assign(lps, lps + n);
        const float *conf = nullptr;
        detail::check(fmr_result_sample_confidence(handle_.get(), i, &conf, &n));
        s.confidence.assign(conf, conf + n);
        return s;
    }
    /// Every answer voted for, by descending votes (the first is the voted answer).
    std::vector<Vote> votes() const {
        std::vector<Vote> out;
        size_t n = fmr_result_n_votes(handle_.get());
        out.reserve(n);
        for (size_t i = 0; i < n; i++) {
            fmr_vote v = detail::sized<fmr_vote>();
            detail::check(fmr_result_vote(handle_.get(), i, &v));
            out.push_back(Vote{std::string(v.key, v.key_len), std::string(v.display, v.display_len), v.count, v.weight});
        }
        return out;
    }
    /// The voted answer; empty when no sample gave an answer.
    std::optional<Vote> voted() const {
        if (fmr_result_n_votes(handle_.get()) == 0) {
            return std::nullopt;
        }
        fmr_vote v = detail::sized<fmr_vote>();
        detail::check(fmr_result_vote(handle_.get(), 0, &v));
        return Vote{std::string(v.key, v.key_len), std::string(v.display, v.display_len), v.count, v.weight};
    }
    fmr_group_stats stats() const {
        fmr_group_stats s = detail::sized<fmr_group_stats>();
        detail::check(fmr_result_stats(handle_.get(), &s));
        return s;
    }
    std::string to_json() const {
        char *json = nullptr;
        size_t len = 0;
        detail::check(fmr_result_to_json(handle_.get(), &json, &len));
        return detail::take_string(json, len);
    }
    const fmr_result *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<fmr_result, detail::Deleter<fmr_result, fmr_result_free>> handle_;
};

/// A cancellation flag; cancel() may be called from any thread.
class CancelFlag {
  public:
    CancelFlag() : handle_(fmr_cancel_flag_new()) {}
    void cancel() const noexcept { fmr_cancel_flag_set(handle_.get()); }
    void reset() const noexcept { fmr_cancel_flag_reset(handle_.get()); }
    bool is_set() const noexcept { return fmr_cancel_flag_is_set(handle_.get()); }
    const fmr_cancel_flag *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<fmr_cancel_flag, detail::Deleter<fmr_cancel_flag, fmr_cancel_flag_free>> handle_;
};

/// One streamed token.
struct TokenEvent {
    uint32_t sample = 0;      ///< sample index in the group
    int32_t token = 0;        ///< token id
    float logprob = 0;        ///< log-probability (0 for forced tokens)
    uint32_t n_generated = 0; ///< tokens of this sample so far, this one included
    std::string_view piece;   ///< the token's bytes (may be part of a UTF-8 sequence)
    bool forced = false;      ///< appended by budget forcing
    float confidence = 0;     ///< −mean of the step's top-k log-probabilities (0 if forced)
    /// The step's most likely tokens and their log-probabilities, most likely first; valid only
    /// during the callback (empty for forced tokens, with confidence off or an older library).
    size_t top_k = 0;
    const int32_t *top_tokens = nullptr;
    const float *top_logprobs = nullptr;
};

/// Streaming callback: return false to cancel the rollout. An exception cancels it too and is
/// rethrown from Generator::solve.
using TokenCallback = std::function<bool(const TokenEvent &)>;

/// What Generator::solve takes besides the problem.
struct SolveOptions {
    /// Rollout parameters as JSON (see fmr_generator_solve); empty for defaults.
    std::string_view params_json;
    /// Called for every token; empty for none.
    TokenCallback on_token;
    /// A flag another thread may set to cancel; nullptr for none.
    const CancelFlag *cancel = nullptr;
    /// Samples stop and the group votes after this long; zero for no deadline.
    std::chrono::milliseconds deadline{0};
};

/// Group rollouts on one model; one call at a time per generator.
class Generator {
  public:
    explicit Generator(const Model &model, const fmr_generator_params &params = generator_params()) {
        fmr_generator *raw = nullptr;
        detail::check(fmr_generator_new(model.get(), &params, &raw));
        handle_.reset(raw);
    }
    /// Solves one problem. A cancelled rollout returns its partial result (stats().cancelled).
    Result solve(std::string_view problem, const SolveOptions &options) {
        Stream stream{&options.on_token, {}};
        fmr_rollout_hooks hooks{};
        fmr_rollout_hooks_init(&hooks, sizeof hooks);
        if (options.on_token) {
            hooks.on_token = &Generator::trampoline;
            hooks.user_data = &stream;
        }
        if (options.cancel != nullptr) {
            hooks.cancel = options.cancel->get();
        }
        if (options.deadline.count() > 0) {
            hooks.deadline_ms = static_cast<uint64_t>(options.deadline.count());
        }
        fmr_result *raw = nullptr;
        fmr_error *err = fmr_generator_solve(handle_.get(), problem.data(), problem.size(), options.params_json.data(),
                                             options.params_json.size(), &hooks, &raw);
        Result result(raw);
#ifdef FMR_NO_EXCEPTIONS
        detail::check(err);
#else
        detail::check_after_callback(err, stream.error);
#endif
        return result;
    }
    /// Solves one problem with `params_json` and, optionally, a token callback and a cancel flag.
    Result solve(std::string_view problem, std::string_view params_json = {}, TokenCallback on_token = {},
                 const CancelFlag *cancel = nullptr) {
        SolveOptions o;
        o.params_json = params_json;
        o.on_token = std::move(on_token);
        o.cancel = cancel;
        return solve(problem, o);
    }

  private:
    struct Stream {
        const TokenCallback *fn;
        std::exception_ptr error;
    };
    static bool trampoline(const fmr_token_event *ev, void *user_data) noexcept {
        auto *stream = static_cast<Stream *>(user_data);
        TokenEvent t;
        t.sample = ev->sample;
        t.token = ev->token;
        t.logprob = ev->logprob;
        t.n_generated = ev->n_generated;
        t.piece = std::string_view(ev->piece, ev->piece_len);
        t.forced = ev->struct_size >= offsetof(fmr_token_event, forced) + sizeof ev->forced && ev->forced;
        if (ev->struct_size >= offsetof(fmr_token_event, top_logprobs) + sizeof ev->top_logprobs) {
            t.confidence = ev->confidence;
            t.top_k = ev->top_k;
            t.top_tokens = ev->top_tokens;
            t.top_logprobs = ev->top_logprobs;
        }
#ifdef FMR_NO_EXCEPTIONS
        return (*stream->fn)(t);
#else
        try {
            return (*stream->fn)(t);
        } catch (...) {
            stream->error = std::current_exception();
            return false; // cancels; solve() rethrows
        }
#endif
    }
    std::unique_ptr<fmr_generator, detail::Deleter<fmr_generator, fmr_generator_free>> handle_;
};

/// The verifier's decision.
struct Verdict {
    bool equivalent = false;
    fmr_verdict_reason reason = 0; ///< FMR_VERDICT_*
    std::string detail;            ///< an explanation for people
};

/// Compares a predicted answer (or, with `is_completion`, a whole completion) with a gold
/// answer; `options_json` as documented for fmr_verify. Thread-safe.
inline Verdict verify(std::string_view gold, std::string_view predicted, bool is_completion = false,
                      std::string_view options_json = {}) {
    fmr_verdict v = detail::sized<fmr_verdict>();
    char *detail_text = nullptr;
    size_t detail_len = 0;
    detail::check(fmr_verify(gold.data(), gold.size(), predicted.data(), predicted.size(), is_completion,
                             options_json.data(), options_json.size(), &v, &detail_text, &detail_len));
    return Verdict{v.equivalent, v.reason, detail::take_string(detail_text, detail_len)};
}

/// One completion to score.
struct Completion {
    std::string_view text;
    size_t n_tokens = 0; ///< its length in tokens (used when the length unit is tokens)
};

/// Reward components of one completion.
struct RewardScores {
    double total = 0, format = 0, cosine = 0, length = 0, accuracy = 0;
    bool correct = false;
    bool gold_unparseable_used = false;
    fmr_verdict_reason reason = 0;
    /// Length terms beyond the paper (unweighted): ShorterBetter, the Laser-D style bonus, DAPO's
    /// soft overlong punishment (see fmr_reward_scores).
    double shorter_better = 0, laser = 0, overlong = 0;
};

/// Scores completions of one problem with the paper's rewards; `config_json` as documented for
/// fmr_score_group. Thread-safe.
inline std::vector<RewardScores> score_group(std::string_view gold, const std::vector<Completion> &completions,
                                             std::string_view config_json = {}) {
    std::vector<fmr_completion> in(completions.size());
    for (size_t i = 0; i < completions.size(); i++) {
        in[i] = detail::sized<fmr_completion>();
        in[i].text = completions[i].text.data();
        in[i].text_len = completions[i].text.size();
        in[i].n_tokens = completions[i].n_tokens;
    }
    std::vector<fmr_reward_scores> raw(completions.size(), detail::sized<fmr_reward_scores>());
    detail::check(fmr_score_group(gold.data(), gold.size(), in.data(), in.size(), config_json.data(),
                                  config_json.size(), raw.data()));
    std::vector<RewardScores> out;
    out.reserve(raw.size());
    for (const fmr_reward_scores &s : raw) {
        out.push_back(RewardScores{s.total, s.format, s.cosine, s.length, s.accuracy, s.correct, s.gold_unparseable_used,
                                   s.reason, s.shorter_better, s.laser, s.overlong});
    }
    return out;
}

/// Host reward: (problem, gold answer, completion, completion tokens) -> reward. An exception
/// fails the step (nothing changes) and is rethrown from Trainer::step or Trainer::run.
using RewardCallback = std::function<double(std::string_view problem, std::string_view answer,
                                            std::string_view completion, size_t completion_tokens)>;
/// Progress of Trainer::run: one step's metrics as JSON -> keep going? An exception stops the
/// run after that step (outputs are written) and is rethrown from Trainer::run.
using ProgressCallback = std::function<bool(std::string_view metrics_json)>;

/// The SFT or GRPO loop of the recipe. One call at a time, except steps(), which any thread may
/// call at any time (a UI polling a run).
class Trainer {
  public:
    /// `stage` is FMR_STAGE_SFT or FMR_STAGE_GRPO; `config_json` a run configuration.
    Trainer(std::string_view config_json, fmr_stage stage) {
        fmr_trainer *raw = nullptr;
        detail::check(fmr_trainer_new(config_json.data(), config_json.size(), stage, &raw));
        handle_.reset(raw);
    }
    /// Adds a host reward with `weight` (replacing any earlier one). If the library rejects it,
    /// the trainer keeps the reward it had.
    void set_reward(RewardCallback cb, double weight) {
        auto next = std::make_unique<Reward>(Reward{std::move(cb), {}});
        detail::check(fmr_trainer_set_reward_callback(handle_.get(), &Trainer::reward_trampoline, next.get(), weight));
        reward_ = std::move(next); // the trainer now points at `next`; the old one can go
    }
    /// Removes the host reward.
    void clear_reward() {
        detail::check(fmr_trainer_set_reward_callback(handle_.get(), nullptr, nullptr, 0.0));
        reward_.reset();
    }
    /// One optimizer step on `batch_json` (empty: the next rows of the run's data); returns the
    /// step's metrics as JSON.
    std::string step(std::string_view batch_json = {}, const CancelFlag *cancel = nullptr) {
        char *json = nullptr;
        size_t len = 0;
        fmr_error *err = fmr_trainer_step(handle_.get(), batch_json.data(), batch_json.size(),
                                          cancel ? cancel->get() : nullptr, &json, &len);
        rethrow_pending(err);
        return detail::take_string(json, len);
    }
    /// Runs to the end of the plan; returns an FMR_RUN_* value.
    fmr_run_end run(ProgressCallback progress = {}, const CancelFlag *cancel = nullptr) {
        Progress p{&progress, {}};
        fmr_run_end end = 0;
        fmr_error *err = fmr_trainer_run(handle_.get(), progress ? &Trainer::progress_trampoline : nullptr,
                                         progress ? &p : nullptr, cancel ? cancel->get() : nullptr, &end);
#ifndef FMR_NO_EXCEPTIONS
        if (p.error) {
            fmr_error_free(err);
            std::rethrow_exception(p.error);
        }
#endif
        rethrow_pending(err);
        return end;
    }
    void save_adapter(std::string_view path, fmr_adapter_format format) {
        detail::check(fmr_trainer_save_adapter(handle_.get(), path.data(), path.size(), format));
    }
    void load_adapter(std::string_view path) {
        detail::check(fmr_trainer_load_adapter(handle_.get(), path.data(), path.size()));
    }
    /// Optimizer steps taken; thread-safe, also while another thread runs step() or run().
    uint64_t steps() const noexcept { return fmr_trainer_step_count(handle_.get()); }

  private:
    struct Reward {
        RewardCallback fn;
        std::exception_ptr error;
    };
    struct Progress {
        const ProgressCallback *fn;
        std::exception_ptr error;
    };
    void rethrow_pending(fmr_error *err) {
#ifdef FMR_NO_EXCEPTIONS
        detail::check(err);
#else
        std::exception_ptr none;
        detail::check_after_callback(err, reward_ ? reward_->error : none);
#endif
    }
    static bool reward_trampoline(const fmr_reward_input *in, void *user_data, double *reward) noexcept {
        auto *r = static_cast<Reward *>(user_data);
#ifdef FMR_NO_EXCEPTIONS
        *reward = r->fn(std::string_view(in->problem, in->problem_len), std::string_view(in->answer, in->answer_len),
                        std::string_view(in->completion, in->completion_len), in->completion_tokens);
        return true;
#else
        try {
            *reward = r->fn(std::string_view(in->problem, in->problem_len), std::string_view(in->answer, in->answer_len),
                            std::string_view(in->completion, in->completion_len), in->completion_tokens);
            return true;
        } catch (...) {
            r->error = std::current_exception();
            return false; // the step fails with FMR_ERR_CALLBACK_FAILED; step()/run() rethrow
        }
#endif
    }
    static bool progress_trampoline(const char *json, size_t len, void *user_data) noexcept {
        auto *p = static_cast<Progress *>(user_data);
#ifdef FMR_NO_EXCEPTIONS
        return (*p->fn)(std::string_view(json, len));
#else
        try {
            return (*p->fn)(std::string_view(json, len));
        } catch (...) {
            p->error = std::current_exception();
            return false; // stops the run after this step; run() rethrows
        }
#endif
    }
    // Declared before the handle so that the trainer is freed before the callback it holds.
    std::unique_ptr<Reward> reward_;
    std::unique_ptr<fmr_trainer, detail::Deleter<fmr_trainer, fmr_trainer_free>> handle_;
};

} // namespace fmr

#endif // FMR_HPP
