//! `grpo --config RUN.json`: runs the GRPO stage of the recipe (command line in `fmr_tools::train_cli`).

fn main() {
    fmr_tools::train_cli::main_for(fmr::recipe::Stage::Grpo);
}
