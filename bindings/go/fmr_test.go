package fmr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// modelPath is the default model that scripts/setup.sh fetches; the tests fail without it.
func modelPath(t testing.TB) string {
	dir := os.Getenv("FMR_MODEL_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "fmr", "models")
	}
	p := filepath.Join(dir, "SmolLM2-135M-Instruct.Q4_1.gguf")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test model missing: %s (run scripts/setup.sh first)", p)
	}
	return p
}

var (
	sharedOnce  sync.Once
	sharedModel *Model
	sharedErr   error
)

// model is the default model, loaded once for the package's tests.
func model(t testing.TB) *Model {
	path := modelPath(t)
	sharedOnce.Do(func() { sharedModel, sharedErr = LoadModel(path, nil) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedModel
}

func generator(t testing.TB, samples uint32) *Generator {
	g, err := NewGenerator(model(t), &GeneratorParams{ContextSize: 512 * samples, MaxSamples: samples, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestVersionMatchesHeader(t *testing.T) {
	if Version() != HeaderVersion() || !strings.HasPrefix(Version(), "0.") {
		t.Fatalf("library %s, header %s", Version(), HeaderVersion())
	}
}

func TestErrorsCarryCodes(t *testing.T) {
	_, err := LoadModel("/no/such/model.gguf", nil)
	if !errors.Is(err, ErrModelLoad) || errors.Is(err, ErrIO) {
		t.Fatalf("missing model: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != ErrModelLoad || !strings.Contains(e.Message, "/no/such/model.gguf") {
		t.Fatalf("errors.As: %#v", e)
	}
	g := generator(t, 2)
	_, err = g.Solve(context.Background(), "2+2?", `{"n_sample": 2}`)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestSolveStreamsEveryToken(t *testing.T) {
	g := generator(t, 2)
	var streamed [2]strings.Builder
	var streamedConf [2][]float32
	events, topBad := 0, 0
	res, err := g.SolveStream(context.Background(), "What is 3 + 4?", `{"n_samples": 2, "max_tokens": 24}`,
		func(ev TokenEvent) bool {
			events++
			streamed[ev.Sample].WriteString(ev.Piece)
			streamedConf[ev.Sample] = append(streamedConf[ev.Sample], ev.Confidence)
			if len(ev.TopTokens) != 20 || len(ev.TopLogprobs) != 20 || ev.TopLogprobs[0] > 0 {
				topBad++
			}
			return true
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Samples) != 2 || res.Stats.Cancelled {
		t.Fatalf("result: %+v", res.Stats)
	}
	total := 0
	for i, s := range res.Samples {
		if s.Text != streamed[i].String() {
			t.Errorf("sample %d: streamed %q, result %q", i, streamed[i].String(), s.Text)
		}
		if len(s.Tokens) != len(s.Logprobs) || len(s.Tokens) == 0 {
			t.Errorf("sample %d: %d tokens, %d logprobs", i, len(s.Tokens), len(s.Logprobs))
		}
		if s.HasAnswer != (s.Answer != "") || s.HasAnswer != (s.AnswerKey != "") {
			t.Errorf("sample %d: answer %q key %q", i, s.Answer, s.AnswerKey)
		}
		// Confidence is on by default: one per token, as streamed, and the summaries.
		if len(s.Confidence) != len(s.Tokens) || !s.HasConfidence || s.ConfidenceMean <= 0 {
			t.Errorf("sample %d: %d confidences for %d tokens (%+v)", i, len(s.Confidence), len(s.Tokens), s.HasConfidence)
		}
		for k, c := range streamedConf[i] {
			if k >= len(s.Confidence) || s.Confidence[k] != c {
				t.Errorf("sample %d token %d: streamed confidence %v", i, k, c)
				break
			}
		}
		total += len(s.Tokens)
	}
	if topBad > 0 {
		t.Errorf("%d streamed tokens without their top-20", topBad)
	}
	if total != res.Stats.TokensGenerated {
		t.Errorf("tokens %d vs stats %d", total, res.Stats.TokensGenerated)
	}
	if events == 0 {
		t.Error("no token streamed")
	}
	for _, v := range res.Votes {
		found := false
		for _, s := range res.Samples {
			found = found || (s.AnswerKey == v.Key && s.Answer == v.Answer)
		}
		if !found || v.Count < 1 || v.Weight != float64(v.Count) {
			t.Errorf("vote %+v matches no sample", v)
		}
	}
}

func TestCallbackFalseCancelsWithoutError(t *testing.T) {
	g := generator(t, 2)
	res, err := g.SolveStream(context.Background(), "What is 3 + 4?", `{"n_samples": 2, "max_tokens": 24}`,
		func(TokenEvent) bool { return false })
	if err != nil || !res.Stats.Cancelled {
		t.Fatalf("err %v, cancelled %v", err, res.Stats.Cancelled)
	}
}

func TestContextCancelReturnsPartialResult(t *testing.T) {
	g := generator(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan struct{})
	var once sync.Once
	go func() {
		<-first
		cancel()
	}()
	res, err := g.SolveStream(ctx, "Count from 1 to 500.", `{"n_samples": 2, "max_tokens": 200}`,
		func(TokenEvent) bool {
			once.Do(func() { close(first) })
			return true
		})
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if res == nil || !res.Stats.Cancelled || res.Stats.TokensGenerated >= 400 {
		t.Fatalf("partial result: %+v", res)
	}
	if _, err := g.Solve(ctx, "2+2?", ""); err != context.Canceled {
		t.Fatalf("done context: %v", err)
	}
}

func TestContextDeadlineIsTheRolloutDeadline(t *testing.T) {
	g := generator(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := g.Solve(ctx, "Count from 1 to 1000, one number per line.", `{"n_samples": 1, "max_tokens": 400}`)
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples[0].FinishReason != FinishDeadline || res.Stats.Cancelled {
		t.Fatalf("finish %v after %d tokens", res.Samples[0].FinishReason, len(res.Samples[0].Tokens))
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
}

func TestPanicInCallbackIsRaisedAgain(t *testing.T) {
	g := generator(t, 2)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		g.SolveStream(context.Background(), "2+2?", `{"n_samples": 2, "max_tokens": 8}`,
			func(TokenEvent) bool { panic("boom") })
		t.Fatal("no panic")
	}()
	if _, err := g.Solve(context.Background(), "2+2?", `{"n_samples": 2, "max_tokens": 4}`); err != nil {
		t.Fatalf("generator unusable after a panic: %v", err)
	}
}

// Goroutines solve on their own generators sharing one model while another goroutine cancels
// one of them; run with -race.
func TestSharedModelConcurrentSolvesAndCancel(t *testing.T) {
	m := model(t)
	const solvers = 3
	ctxs := make([]context.Context, solvers)
	cancels := make([]context.CancelFunc, solvers)
	for i := range ctxs {
		ctxs[i], cancels[i] = context.WithCancel(context.Background())
		defer cancels[i]()
	}
	var wg sync.WaitGroup
	results := make([][]*Result, solvers)
	errs := make([][]error, solvers)
	zeroStarted := make(chan struct{})
	var zeroOnce sync.Once
	for i := 0; i < solvers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			g, err := NewGenerator(m, &GeneratorParams{ContextSize: 1024, MaxSamples: 2, Threads: 1})
			if err != nil {
				errs[i] = append(errs[i], err)
				results[i] = append(results[i], nil)
				return
			}
			defer g.Close()
			for k := 0; k < 2; k++ {
				problem := fmt.Sprintf("What is %d + %d?", i+2, k+3)
				params := `{"n_samples": 2, "max_tokens": 16}`
				if i == 0 {
					problem, params = "Count from 1 to 500.", `{"n_samples": 2, "max_tokens": 200}`
				}
				res, err := g.SolveStream(ctxs[i], problem, params, func(TokenEvent) bool {
					if i == 0 {
						zeroOnce.Do(func() { close(zeroStarted) })
					}
					return true
				})
				results[i] = append(results[i], res)
				errs[i] = append(errs[i], err)
			}
		}(i)
	}
	// The canceller stops solver 0 once it has produced tokens; until then it tokenizes on the
	// shared model and verifies answers, concurrently with the solvers.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-zeroStarted:
				cancels[0]()
				return
			default:
			}
			if _, err := m.Tokenize("What is 2 + 2?", true); err != nil {
				t.Error(err)
			}
			if v, err := Verify("7", "\\boxed{7}", true, ""); err != nil || !v.Equivalent {
				t.Error("verify", v, err)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	for i := 0; i < solvers; i++ {
		for k, err := range errs[i] {
			res := results[i][k]
			switch {
			case i == 0 && k == 0:
				if !errors.Is(err, context.Canceled) || res == nil || !res.Stats.Cancelled {
					t.Errorf("solver 0: err %v", err)
				}
			case i == 0:
				if err != context.Canceled {
					t.Errorf("solver 0 after cancel: %v", err)
				}
			default:
				if err != nil || len(res.Samples) != 2 || res.Stats.Cancelled {
					t.Errorf("solver %d.%d: %v", i, k, err)
				}
			}
		}
	}
}

func TestCloseIsIdempotentAndLaterCallsFail(t *testing.T) {
	m, err := LoadModel(modelPath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(m, &GeneratorParams{ContextSize: 256, MaxSamples: 1, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	m.Close()
	// The generator keeps the model alive.
	if _, err := g.Solve(context.Background(), "2+2?", `{"n_samples": 1, "max_tokens": 4}`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tokenize("x", false); !errors.Is(err, ErrClosed) {
		t.Fatalf("tokenize after close: %v", err)
	}
	g.Close()
	g.Close()
	if _, err := g.Solve(context.Background(), "2+2?", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("solve after close: %v", err)
	}
}

func TestVerifyAndScoreGroup(t *testing.T) {
	v, err := Verify("1/2", "0.5", false, "")
	if err != nil || !v.Equivalent || v.Reason != VerdictNumericExact || v.Detail == "" {
		t.Fatalf("%+v %v", v, err)
	}
	if _, err := Verify("1", "1", false, `{"tolerance": 1}`); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown option: %v", err)
	}
	right, wrong := `\boxed{7}</think>`, `no: \boxed{8}</think>`
	s, err := ScoreGroup("7", []Completion{{Text: right, Tokens: 5}, {Text: wrong, Tokens: 7}}, "")
	if err != nil {
		t.Fatal(err)
	}
	cos1 := 0.1 + 0.45*(1+math.Cos(math.Pi*17/30000))
	cos2 := -0.1 - 0.45*(1+math.Cos(math.Pi*21/30000))
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !s[0].Correct || s[1].Correct || !near(s[0].Total, 1+cos1+0.5) || !near(s[1].Total, 1+cos2-0.5) {
		t.Fatalf("%+v", s)
	}
	// The length terms beyond the paper (hand-computed in tests/c/verify_rewards.c).
	s, err = ScoreGroup("7", []Completion{{Text: right, Tokens: 5}, {Text: wrong, Tokens: 7}},
		`{"length_unit": "tokens", "shorter_better": {"beta": 0.1}, "overlong": {"max_len": 8, "cache": 4}}`)
	if err != nil || !near(s[1].ShorterBetter, -0.2) || s[0].Laser != 1 || s[1].Laser != 0 ||
		!near(s[0].Overlong, -0.25) || !near(s[1].Overlong, -0.75) {
		t.Fatalf("length terms: %+v %v", s, err)
	}
	if empty, err := ScoreGroup("7", nil, ""); err != nil || len(empty) != 0 {
		t.Fatalf("empty group: %v %v", empty, err)
	}
}

func trainerConfig(t *testing.T, extra string) string {
	data, err := filepath.Abs("../../tests/fixtures/recipe_grpo.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`{"preset": "small", "model": %q, "out_dir": %q, "threads": 2, "seed": 3,
		"data": {"train": %q}, "lora": {"rank": 2, "alpha": 4, "targets": ["q"]},
		"grpo": {"prompts_per_step": 1, "generations": 2, "max_completion_tokens": 8}%s}`,
		modelPath(t), t.TempDir(), data, extra)
}

var errHost = errors.New("host reward failed")

func TestTrainerWithAGoReward(t *testing.T) {
	tr, err := NewTrainer(trainerConfig(t, `, "max_steps": 2`), StageGRPO)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	calls := 0
	err = tr.SetReward(func(in RewardInput) (float64, error) {
		calls++
		if in.Problem == "" || in.Answer == "" {
			return 0, fmt.Errorf("empty input %+v", in)
		}
		return float64(len(in.Completion) % 3), nil
	}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	batch := `[{"problem": "What is 1 + 1?", "answer": "2"}]`
	metrics, err := tr.Step(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || !strings.Contains(metrics, `"reward_custom"`) || tr.StepCount() != 1 {
		t.Fatalf("%d calls, %d steps, metrics %s", calls, tr.StepCount(), metrics)
	}
	// A failing reward: its own code, the Go error inside, and no step taken.
	if err := tr.SetReward(func(RewardInput) (float64, error) { return 0, errHost }, 1); err != nil {
		t.Fatal(err)
	}
	_, err = tr.Step(context.Background(), batch)
	if !errors.Is(err, ErrCallbackFailed) || !errors.Is(err, errHost) || errors.Is(err, ErrCancelled) {
		t.Fatalf("failing reward: %v", err)
	}
	if tr.StepCount() != 1 {
		t.Fatalf("a failed step counted: %d", tr.StepCount())
	}
	if err := tr.SetReward(nil, 0); err != nil {
		t.Fatal(err)
	}
	// Run the last planned step while another goroutine polls StepCount.
	stop := make(chan struct{})
	polled := make(chan uint64)
	go func() {
		var last uint64
		for {
			select {
			case <-stop:
				polled <- last
				return
			default:
				last = tr.StepCount()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	progress := 0
	end, err := tr.Run(context.Background(), func(m string) bool {
		progress++
		return strings.Contains(m, `"step":2`)
	})
	close(stop)
	last := <-polled
	if err != nil || end != RunFinished || progress != 1 || tr.StepCount() != 2 || last > 2 {
		t.Fatalf("run: end %v err %v progress %d steps %d polled %d", end, err, progress, tr.StepCount(), last)
	}
	path := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := tr.SaveAdapter(path, AdapterGGUF); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("adapter: %v", err)
	}
	if _, err := tr.Step(context.Background(), `[{"problem": 3}]`); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad batch: %v", err)
	}
}

func TestTrainerCancelledByContext(t *testing.T) {
	tr, err := NewTrainer(trainerConfig(t, `, "max_steps": 5`), StageGRPO)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	end, err := tr.Run(ctx, func(string) bool {
		cancel()
		return true
	})
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) || end != 0 {
		t.Fatalf("end %v err %v", end, err)
	}
	if tr.StepCount() != 1 {
		t.Fatalf("steps %d", tr.StepCount())
	}
}
