//! Command-line argument helpers shared by the programs.

/// Parses a comma-separated list of numbers ("1,8,16").
pub fn parse_list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|x| x.trim().parse::<usize>().map_err(|e| format!("'{x}': {e}")))
        .collect()
}

/// Where the programs put the model: the flags `--gpu-layers N` (-1 = all), `--main-gpu I`,
/// `--split-mode none|layer|row`, `--cpu-fallback`, and `--device cpu|cuda` (`cuda` is
/// `--gpu-layers -1`).
#[derive(Clone, Debug, Default)]
pub struct DeviceArgs {
    pub params: fmr::engine::ModelParams,
}

impl DeviceArgs {
    /// The usage text of these flags.
    pub const USAGE: &'static str =
        "[--device cpu|cuda] [--gpu-layers N] [--main-gpu I] [--split-mode none|layer|row] [--cpu-fallback]";

    /// Takes `flag` (reading its value from `value` when it has one) if it is one of these
    /// flags: `Ok(true)` when taken, `Ok(false)` when it is not a device flag.
    pub fn take(
        &mut self,
        flag: &str,
        value: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<bool, String> {
        let p = &mut self.params;
        match flag {
            "--gpu-layers" => {
                p.n_gpu_layers = value()?.parse().map_err(|e| format!("--gpu-layers: {e}"))?
            }
            "--main-gpu" => {
                p.main_gpu = value()?.parse().map_err(|e| format!("--main-gpu: {e}"))?
            }
            "--split-mode" => {
                p.split_mode = match value()?.as_str() {
                    "none" => fmr::engine::SplitMode::None,
                    "layer" => fmr::engine::SplitMode::Layer,
                    "row" => fmr::engine::SplitMode::Row,
                    other => {
                        return Err(format!("--split-mode: '{other}' is not none, layer or row"))
                    }
                }
            }
            "--cpu-fallback" => p.cpu_fallback = true,
            "--device" => {
                p.n_gpu_layers = match value()?.as_str() {
                    "cpu" => 0,
                    "cuda" | "gpu" => -1,
                    other => return Err(format!("--device: '{other}' is not cpu or cuda")),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The programs' first line about where they run: the CPU variant and its features, the GPU
/// layers of `model`, and a fallback note when the model went to the CPU instead.
pub fn device_line(model: &fmr::engine::Model) -> String {
    let v = fmr::engine::cpu_variant();
    let gpus = fmr::engine::gpus();
    let mut line = format!(
        "device: CPU backend {} [{}]",
        v.library,
        v.features.join(" ")
    );
    if gpus.is_empty() {
        line.push_str(" | no GPU");
    } else {
        let names: Vec<String> = gpus
            .iter()
            .map(|g| format!("{} {} MiB free", g.description, g.memory_free >> 20))
            .collect();
        line.push_str(&format!(" | GPUs: {}", names.join(", ")));
    }
    line.push_str(&format!(" | GPU layers {}", model.gpu_layers()));
    if let Some(why) = model.fallback() {
        line.push_str(&format!(" | CPU fallback: {why}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_all(args: &[&str]) -> Result<DeviceArgs, String> {
        let mut d = DeviceArgs::default();
        let mut it = args.iter().map(|s| s.to_string());
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            if !d.take(&flag, &mut value)? {
                return Err(format!("not a device flag: {flag}"));
            }
        }
        Ok(d)
    }

    #[test]
    fn device_flags_set_the_model_parameters() {
        let d = take_all(&["--device", "cuda", "--main-gpu", "1", "--split-mode", "row"]).unwrap();
        assert_eq!(d.params.n_gpu_layers, -1);
        assert_eq!(d.params.main_gpu, 1);
        assert_eq!(d.params.split_mode, fmr::engine::SplitMode::Row);
        assert!(!d.params.cpu_fallback);
        let d = take_all(&["--gpu-layers", "12", "--cpu-fallback"]).unwrap();
        assert_eq!(d.params.n_gpu_layers, 12);
        assert!(d.params.cpu_fallback);
        assert!(take_all(&["--device", "tpu"]).unwrap_err().contains("tpu"));
        assert!(take_all(&["--split-mode", "diagonal"]).is_err());
        assert!(take_all(&["--gpu-layers"])
            .unwrap_err()
            .contains("needs a value"));
        assert!(take_all(&["--threads", "2"]).is_err());
    }
}
