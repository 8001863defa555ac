//! `sft --config RUN.json`: runs the SFT stage of the recipe (see examples/train_cli.rs and configs/).

mod common;
#[path = "train_cli.rs"]
mod train_cli;

fn main() {
    train_cli::main_for(fmr::recipe::Stage::Sft);
}
