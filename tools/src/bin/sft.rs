//! `sft --config RUN.json`: runs the SFT stage of the recipe (command line in `fmr_tools::train_cli`).

fn main() {
    fmr_tools::train_cli::main_for(fmr::recipe::Stage::Sft);
}
