// solve: answers a math problem with a group of samples and early stopping through the Go
// binding of fmr, streaming the first sample and printing each answer and the vote.
//
// Usage: go run . [-model PATH] [-timeout 30s] [-params JSON] ["problem"]
// (with PKG_CONFIG_PATH and LD_LIBRARY_PATH pointing at an fmr install; see the README)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"fmr.local/fmr"
)

const defaultProblem = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"

func defaultModel() string {
	dir := os.Getenv("FMR_MODEL_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "fmr", "models")
	}
	return filepath.Join(dir, "SmolLM2-135M-Instruct.Q4_1.gguf")
}

func main() {
	modelPath := flag.String("model", defaultModel(), "GGUF model")
	timeout := flag.Duration("timeout", 0, "answer by this time (the samples stop and vote)")
	params := flag.String("params", `{"n_samples": 4, "max_tokens": 96, "consensus": {"rule": "lossless"}, "answer": {"last_number_fallback": true}}`, "rollout parameters (JSON)")
	quiet := flag.Bool("quiet", false, "do not stream the first sample")
	flag.Parse()
	problem := defaultProblem
	if flag.NArg() > 0 {
		problem = strings.Join(flag.Args(), " ")
	}
	if err := run(*modelPath, problem, *params, *timeout, !*quiet); err != nil {
		fmt.Fprintln(os.Stderr, "solve:", err)
		os.Exit(1)
	}
}

func run(modelPath, problem, params string, timeout time.Duration, stream bool) error {
	fmt.Printf("fmr %s (Go binding built against %s)\n", fmr.Version(), fmr.HeaderVersion())
	model, err := fmr.LoadModel(modelPath, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	gen, err := fmr.NewGenerator(model, &fmr.GeneratorParams{ContextSize: 2048, MaxSamples: 8, Threads: 2})
	if err != nil {
		return err
	}
	defer gen.Close()

	// Ctrl-C cancels the rollout; -timeout makes it answer by then.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	onToken := func(ev fmr.TokenEvent) bool {
		if stream && ev.Sample == 0 {
			fmt.Print(ev.Piece)
		}
		return true
	}
	res, err := gen.SolveStream(ctx, problem, params, onToken)
	if stream {
		fmt.Println()
	}
	if errors.Is(err, context.Canceled) {
		fmt.Println("cancelled; partial result:")
	} else if err != nil {
		return err
	}
	for i, s := range res.Samples {
		answer := "none"
		if s.HasAnswer {
			answer = s.Answer
		}
		fmt.Printf("sample %d: %d tokens, %s, answer %s\n", i, len(s.Tokens), s.FinishReason, answer)
	}
	if v, ok := res.Voted(); ok {
		fmt.Printf("vote: %s (%d of %d)\n", v.Answer, v.Count, len(res.Samples))
	} else {
		fmt.Println("vote: none")
	}
	st := res.Stats
	fmt.Printf("tokens: %d generated, %d without early stopping (%.0f%% saved), %.2f s\n",
		st.TokensGenerated, st.TokensFixedBudget, 100*st.TokensSaved(), st.Wall.Seconds())
	return nil
}
